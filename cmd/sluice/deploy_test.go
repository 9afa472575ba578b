package main

// Checks of deploy/: the Kubernetes manifests, the compose file, the
// image's config file. No Kubernetes API server or schema bundle is
// reachable where sluice is tested, so the manifests are decoded strictly
// into the subset of the Kubernetes API they use (a misspelt or misplaced
// field is an error, as kubectl's validation would make it) and then
// checked for what makes the cluster work: names that match, ports that
// exist, voters that are the pods, settings the broker knows, a grace
// period longer than the controlled shutdown.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/sluicemq/sluice/controller"
)

const deployDir = "../../deploy"

// pendingSettings are settings the deploy files set for flags being added
// to the broker alongside them (the HTTP endpoint, the Kafka listener):
// until a flag exists its variable is ignored.
var pendingSettings = map[string]bool{"http-addr": true, "kafka-listen": true, "kafka-advertised-addr": true}

// Subset of the Kubernetes API: the fields the manifests use, by their
// API names.
type (
	k8sMeta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	k8sSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	k8sObject struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
		Spec       yaml.Node         `yaml:"spec"`
	}
	k8sServiceSpec struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
	}
	k8sPDBSpec struct {
		MaxUnavailable int         `yaml:"maxUnavailable"`
		Selector       k8sSelector `yaml:"selector"`
	}
	k8sProbe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		PeriodSeconds    int `yaml:"periodSeconds"`
		FailureThreshold int `yaml:"failureThreshold"`
	}
	k8sEnv struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	}
	k8sContainer struct {
		Name            string   `yaml:"name"`
		Image           string   `yaml:"image"`
		ImagePullPolicy string   `yaml:"imagePullPolicy"`
		Args            []string `yaml:"args"`
		Env             []k8sEnv `yaml:"env"`
		Ports           []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
			Protocol      string `yaml:"protocol"`
		} `yaml:"ports"`
		StartupProbe   *k8sProbe `yaml:"startupProbe"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		Lifecycle      struct {
			PreStop struct {
				Sleep struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	k8sStatefulSetSpec struct {
		ServiceName string `yaml:"serviceName"`
		Replicas    int    `yaml:"replicas"`
		Ordinals    struct {
			Start int `yaml:"start"`
		} `yaml:"ordinals"`
		PodManagementPolicy string `yaml:"podManagementPolicy"`
		UpdateStrategy      struct {
			Type string `yaml:"type"`
		} `yaml:"updateStrategy"`
		Selector k8sSelector `yaml:"selector"`
		Template struct {
			Metadata k8sMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot        bool   `yaml:"runAsNonRoot"`
					RunAsUser           int    `yaml:"runAsUser"`
					RunAsGroup          int    `yaml:"runAsGroup"`
					FSGroup             int    `yaml:"fsGroup"`
					FSGroupChangePolicy string `yaml:"fsGroupChangePolicy"`
				} `yaml:"securityContext"`
				Affinity struct {
					PodAntiAffinity struct {
						Required []struct {
							LabelSelector k8sSelector `yaml:"labelSelector"`
							TopologyKey   string      `yaml:"topologyKey"`
						} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				TopologySpreadConstraints []struct {
					MaxSkew           int         `yaml:"maxSkew"`
					TopologyKey       string      `yaml:"topologyKey"`
					WhenUnsatisfiable string      `yaml:"whenUnsatisfiable"`
					LabelSelector     k8sSelector `yaml:"labelSelector"`
				} `yaml:"topologySpreadConstraints"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					Secret struct {
						SecretName  string `yaml:"secretName"`
						DefaultMode int    `yaml:"defaultMode"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata k8sMeta `yaml:"metadata"`
			Spec     struct {
				AccessModes []string `yaml:"accessModes"`
				Resources   struct {
					Requests map[string]string `yaml:"requests"`
				} `yaml:"resources"`
			} `yaml:"spec"`
		} `yaml:"volumeClaimTemplates"`
	}
)

// strictDecode decodes node into v, refusing fields v does not have.
func strictDecode(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// settingEnv reports whether name is the environment variable of a
// broker setting (or of one being added today).
func settingEnv(name string) bool {
	fs := newBrokerCmd().LocalFlags()
	for _, f := range settingFlags(fs) {
		if envName(f.Name) == name {
			return true
		}
	}
	for k := range pendingSettings {
		if envName(k) == name {
			return true
		}
	}
	// The cluster secret is read from the environment only, never a flag.
	return name == envName("config") || name == "SLUICE_CLUSTER_SECRET"
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// checkKubernetes returns what is wrong with the manifests in text.
func checkKubernetes(text []byte) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	objs := map[string]map[string]*k8sObject{} // kind, name
	var order []*k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(text))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return append(errs, fmt.Errorf("parse: %w", err))
		}
		o := &k8sObject{}
		if err := strictDecode(&n, o); err != nil {
			return append(errs, fmt.Errorf("line %d: %w", n.Line, err))
		}
		if objs[o.Kind] == nil {
			objs[o.Kind] = map[string]*k8sObject{}
		}
		objs[o.Kind][o.Metadata.Name] = o
		order = append(order, o)
	}
	known := map[string]string{"ConfigMap": "v1", "Service": "v1", "StatefulSet": "apps/v1", "PodDisruptionBudget": "policy/v1"}
	for _, o := range order {
		if known[o.Kind] != o.APIVersion {
			bad("%s %s: apiVersion %q, want %q", o.Kind, o.Metadata.Name, o.APIVersion, known[o.Kind])
		}
		if !dnsLabel.MatchString(o.Metadata.Name) {
			bad("%s: name %q is not a DNS label", o.Kind, o.Metadata.Name)
		}
	}
	services := map[string]*k8sServiceSpec{}
	for name, o := range objs["Service"] {
		s := &k8sServiceSpec{}
		if err := strictDecode(&o.Spec, s); err != nil {
			bad("Service %s: %v", name, err)
			continue
		}
		services[name] = s
	}
	if len(objs["StatefulSet"]) != 1 {
		return append(errs, fmt.Errorf("want one StatefulSet, found %d", len(objs["StatefulSet"])))
	}
	var ss k8sStatefulSetSpec
	for name, o := range objs["StatefulSet"] {
		if err := strictDecode(&o.Spec, &ss); err != nil {
			return append(errs, fmt.Errorf("StatefulSet %s: %w", name, err))
		}
		checkStatefulSet(name, &ss, services, objs, bad)
	}
	podLabels := ss.Template.Metadata.Labels
	for name, s := range services {
		if !subset(s.Selector, podLabels) || len(s.Selector) == 0 {
			bad("Service %s: selector %v does not select the pods (%v)", name, s.Selector, podLabels)
		}
		for _, p := range s.Ports {
			if c := ss.Template.Spec.Containers; len(c) > 0 && containerPort(&c[0], p.TargetPort) == 0 {
				bad("Service %s: targetPort %q is no port of the container", name, p.TargetPort)
			}
			if p.Protocol != "" && p.Protocol != "TCP" && p.Protocol != "UDP" {
				bad("Service %s: protocol %q", name, p.Protocol)
			}
		}
	}
	pdbs := objs["PodDisruptionBudget"]
	if len(pdbs) != 1 {
		bad("want one PodDisruptionBudget, found %d", len(pdbs))
	}
	for name, o := range pdbs {
		var p k8sPDBSpec
		if err := strictDecode(&o.Spec, &p); err != nil {
			bad("PodDisruptionBudget %s: %v", name, err)
			continue
		}
		if p.MaxUnavailable != 1 {
			bad("PodDisruptionBudget %s: maxUnavailable %d, want 1 (one broker down keeps a quorum and the ISR)", name, p.MaxUnavailable)
		}
		if len(p.Selector.MatchLabels) == 0 || !subset(p.Selector.MatchLabels, podLabels) {
			bad("PodDisruptionBudget %s: selector does not select the pods", name)
		}
	}
	return errs
}

func checkStatefulSet(name string, ss *k8sStatefulSetSpec, services map[string]*k8sServiceSpec, objs map[string]map[string]*k8sObject, bad func(string, ...any)) {
	pod := &ss.Template.Spec
	labels := ss.Template.Metadata.Labels
	if len(ss.Selector.MatchLabels) == 0 || !subset(ss.Selector.MatchLabels, labels) {
		bad("StatefulSet %s: selector %v does not match the template's labels %v", name, ss.Selector.MatchLabels, labels)
	}
	headless := services[ss.ServiceName]
	switch {
	case headless == nil:
		bad("StatefulSet %s: serviceName %q is no Service", name, ss.ServiceName)
	case headless.ClusterIP != "None":
		bad("Service %s: the StatefulSet's service must be headless (clusterIP: None)", ss.ServiceName)
	case !headless.PublishNotReadyAddresses:
		bad("Service %s: publishNotReadyAddresses must be true: voters find each other before they are ready", ss.ServiceName)
	}
	if ss.PodManagementPolicy != "Parallel" {
		bad("StatefulSet %s: podManagementPolicy %q: the voters must start together (Parallel)", name, ss.PodManagementPolicy)
	}
	if ss.Ordinals.Start < 1 {
		bad("StatefulSet %s: ordinals.start %d: the ordinal is the broker id, and 0 is not a broker id", name, ss.Ordinals.Start)
	}
	for _, a := range pod.Affinity.PodAntiAffinity.Required {
		if !subset(a.LabelSelector.MatchLabels, labels) || a.TopologyKey != "kubernetes.io/hostname" {
			bad("StatefulSet %s: anti-affinity must keep brokers on distinct nodes", name)
		}
	}
	for _, c := range pod.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != "DoNotSchedule" && c.WhenUnsatisfiable != "ScheduleAnyway" {
			bad("StatefulSet %s: whenUnsatisfiable %q", name, c.WhenUnsatisfiable)
		}
	}
	if len(pod.Containers) != 1 {
		bad("StatefulSet %s: want one container", name)
		return
	}
	c := &pod.Containers[0]
	for _, p := range c.Ports {
		if len(p.Name) > 15 || !dnsLabel.MatchString(p.Name) {
			bad("container port name %q: at most 15 characters, a DNS label", p.Name)
		}
	}
	for what, p := range map[string]*k8sProbe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil {
			bad("container %s: no %s probe", c.Name, what)
			continue
		}
		if containerPort(c, p.HTTPGet.Port) == 0 {
			bad("container %s: %s probe port %q is no port of the container", c.Name, what, p.HTTPGet.Port)
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		bad("readiness probe on %s, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		bad("liveness probe on %s, want /healthz", c.LivenessProbe.HTTPGet.Path)
	}

	// Volumes: the data claim and the config map, mounted where the
	// image looks.
	claims := map[string]bool{}
	for _, v := range ss.VolumeClaimTemplates {
		claims[v.Metadata.Name] = true
	}
	volumes := map[string]string{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v.ConfigMap.Name
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
		if _, ok := volumes[m.Name]; !ok && !claims[m.Name] {
			bad("volumeMount %s names no volume or claim", m.Name)
		}
	}
	if !claims[mounts["/var/lib/sluice"]] {
		bad("no volume claim mounted at /var/lib/sluice, the image's data directory")
	}
	settings := map[string]string{}
	if cm := volumes[mounts["/etc/sluice"]]; cm == "" {
		bad("no config map mounted at /etc/sluice (the image's SLUICE_CONFIG is /etc/sluice/sluice.yaml)")
	} else if o := objs["ConfigMap"][cm]; o == nil {
		bad("volume names ConfigMap %s, which is not among the manifests", cm)
	} else if text, ok := o.Data["sluice.yaml"]; !ok {
		bad("ConfigMap %s has no sluice.yaml", cm)
	} else {
		var err error
		if settings, err = readConfigFile(newBrokerCmd().LocalFlags(), "ConfigMap "+cm, strings.NewReader(text)); err != nil {
			bad("%v", err)
		}
	}

	// Environment: known settings, references to variables defined
	// before, voters that are the pods.
	env := map[string]string{}
	for _, e := range c.Env {
		for _, ref := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
			if _, ok := env[ref[1]]; !ok {
				bad("env %s refers to $(%s), not defined before it", e.Name, ref[1])
			}
		}
		if strings.HasPrefix(e.Name, envPrefix) && !settingEnv(e.Name) {
			bad("env %s is no broker setting", e.Name)
		}
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["SLUICE_BROKER_ID"] != "fieldRef:metadata.labels['apps.kubernetes.io/pod-index']" {
		bad("SLUICE_BROKER_ID must come from the pod-index label, got %q", env["SLUICE_BROKER_ID"])
	}
	if env["SLUICE_CLUSTER_SECRET_FILE"] == "" {
		bad("no SLUICE_CLUSTER_SECRET_FILE: brokers of a cluster log in to each other with the cluster secret")
	}
	voters, err := controller.ParseVoters(env["SLUICE_VOTERS"])
	if err != nil {
		bad("SLUICE_VOTERS: %v", err)
	}
	if len(voters) != ss.Replicas {
		bad("%d voters for %d replicas: every pod a voter (more brokers join as non-voters, docs/deploy.md)", len(voters), ss.Replicas)
	}
	raftPort := containerPort(c, "raft")
	for i, v := range voters {
		want := fmt.Sprintf("%s-%d.%s:%d", name, ss.Ordinals.Start+i, ss.ServiceName, raftPort)
		if v.ID != int32(ss.Ordinals.Start+i) || v.Addr != want {
			bad("voter %d@%s, want %d@%s: the pod of that ordinal", v.ID, v.Addr, ss.Ordinals.Start+i, want)
		}
	}
	for i, s := range strings.Split(env["SLUICE_GOSSIP_SEEDS"], ",") {
		want := fmt.Sprintf("%s-%d.%s:%d", name, ss.Ordinals.Start+i, ss.ServiceName, containerPort(c, "gossip"))
		if s != want {
			bad("gossip seed %s, want %s", s, want)
		}
	}
	if listen := settings["listen"]; !strings.HasSuffix(listen, fmt.Sprintf(":%d", containerPort(c, "client"))) || raftPort != containerPort(c, "client")+1 {
		bad("listen %q: the client port and Raft (listen port + 1) must be the container's ports", listen)
	}

	// SIGTERM: the grace period covers the preStop sleep, the controlled
	// shutdown and a flush.
	shutdown := 10 * time.Second
	if s, ok := settings["controlled-shutdown-timeout"]; ok {
		if shutdown, err = time.ParseDuration(s); err != nil {
			bad("controlled-shutdown-timeout: %v", err)
		}
	}
	need := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second + shutdown + 15*time.Second
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace < need {
		bad("terminationGracePeriodSeconds %v: want at least %v (preStop sleep + controlled-shutdown-timeout + 15 s to flush)", grace, need)
	}
	if sc := pod.SecurityContext; !sc.RunAsNonRoot || sc.RunAsUser != 65532 || sc.FSGroup != 65532 {
		bad("the pod must run as the image's user 65532, with fsGroup 65532 for the volume")
	}
}

// containerPort is the number of c's port named or numbered port, 0 if none.
func containerPort(c *k8sContainer, port string) int {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	return 0
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesManifests(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "sluice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkKubernetes(text) {
		t.Error(err)
	}
}

// Each check fails on the mistake it exists to catch.
func TestKubernetesManifestsCheckCatches(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "sluice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, new, want string }{
		{"terminationGracePeriodSeconds: 60", "terminationGracePeriodSecond: 60", "field terminationGracePeriodSecond not found"},
		{"terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 20", "terminationGracePeriodSeconds"},
		{"{name: raft, port: 7093, targetPort: raft}", "{name: raft, port: 7093, targetPort: rafts}", `targetPort "rafts"`},
		{",3@sluice-3.sluice-headless:7093", "", "2 voters for 3 replicas"},
		{"2@sluice-2.sluice-headless:7093", "2@sluice-2.sluice:7093", "voter 2@sluice-2.sluice:7093"},
		{"publishNotReadyAddresses: true", "publishNotReadyAddresses: false", "publishNotReadyAddresses"},
		{"podManagementPolicy: Parallel", "podManagementPolicy: OrderedReady", "Parallel"},
		{"ordinals: {start: 1}", "ordinals: {start: 0}", "ordinals.start 0"},
		{"name: SLUICE_GOSSIP_SEEDS", "name: SLUICE_GOSIP_SEEDS", "SLUICE_GOSIP_SEEDS is no broker setting"},
		{"path: /readyz", "path: /ready", "readiness probe on /ready"},
		{"log-format: json", "log-formats: json", "key log-formats"},
		{"maxUnavailable: 1", "maxUnavailable: 2", "maxUnavailable 2"},
		{"value: $(POD_NAME).sluice-headless.$(POD_NAMESPACE).svc:7092", "value: $(POD).sluice-headless.$(POD_NAMESPACE).svc:7092", "$(POD)"},
	} {
		if !bytes.Contains(text, []byte(c.old)) {
			t.Fatalf("the manifests no longer hold %q: update this test", c.old)
		}
		errs := checkKubernetes(bytes.Replace(text, []byte(c.old), []byte(c.new), 1))
		if !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%q -> %q: errors %v do not say %q", c.old, c.new, errs, c.want)
		}
	}
}

// The compose file's brokers name each other consistently, and every
// variable it sets is a broker setting.
func TestComposeFile(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Hostname    string            `yaml:"hostname"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			StopGracePeriod string   `yaml:"stop_grace_period"`
			Volumes         []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(text, &f); err != nil { // merges the x- anchors
		t.Fatal(err)
	}
	if len(f.Services) != 3 {
		t.Fatalf("%d services, want 3 brokers", len(f.Services))
	}
	ids := map[string]bool{}
	for name, s := range f.Services {
		env := s.Environment
		for k := range env {
			if !settingEnv(k) {
				t.Errorf("%s: %s is no broker setting", name, k)
			}
		}
		if env["SLUICE_CLUSTER_SECRET"] == "" {
			t.Errorf("%s: no SLUICE_CLUSTER_SECRET: brokers of a cluster log in to each other with the cluster secret", name)
		}
		voters, err := controller.ParseVoters(env["SLUICE_VOTERS"])
		if err != nil || len(voters) != 3 {
			t.Fatalf("%s: SLUICE_VOTERS %q: %v", name, env["SLUICE_VOTERS"], err)
		}
		id := env["SLUICE_BROKER_ID"]
		ids[id] = true
		found := false
		for _, v := range voters {
			if fmt.Sprint(v.ID) == id {
				found = true
				if v.Addr != env["SLUICE_RAFT_ADDR"] || v.Addr != s.Hostname+":7093" {
					t.Errorf("%s: voter %d at %s, but SLUICE_RAFT_ADDR %s, hostname %s", name, v.ID, v.Addr, env["SLUICE_RAFT_ADDR"], s.Hostname)
				}
			}
		}
		if !found {
			t.Errorf("%s: broker id %s is not among the voters", name, id)
		}
		if env["SLUICE_ADVERTISED_ADDR"] != s.Hostname+":7092" {
			t.Errorf("%s: advertises %s, its hostname is %s", name, env["SLUICE_ADVERTISED_ADDR"], s.Hostname)
		}
		if h := strings.Join(s.Healthcheck.Test, " "); !strings.Contains(h, "sluice probe") || !strings.HasSuffix(h, "/readyz") {
			t.Errorf("%s: healthcheck %q, want sluice probe of /readyz", name, h)
		}
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d < 25*time.Second {
			t.Errorf("%s: stop_grace_period %q: want the controlled shutdown's 10 s and a flush", name, s.StopGracePeriod)
		}
		if len(s.Volumes) != 1 || !strings.HasSuffix(s.Volumes[0], ":/var/lib/sluice") {
			t.Errorf("%s: volumes %v, want one at /var/lib/sluice", name, s.Volumes)
		}
	}
	if len(ids) != 3 {
		t.Errorf("broker ids %v, want 3 distinct", ids)
	}
}

// The image's config file loads, and the Dockerfile points SLUICE_CONFIG
// at it and exposes every port the broker listens on.
func TestImageConfig(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "sluice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	settings, err := readConfigFile(newBrokerCmd().LocalFlags(), "deploy/sluice.yaml", bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if settings["data-dir"] != "/var/lib/sluice" || settings["listen"] != "0.0.0.0:7092" {
		t.Errorf("settings %v: want data in the volume, listening on every address", settings)
	}
	docker, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"FROM scratch", "ENV SLUICE_CONFIG=/etc/sluice/sluice.yaml", "COPY deploy/sluice.yaml /etc/sluice/sluice.yaml",
		"VOLUME /var/lib/sluice", "EXPOSE 7092 7093 7094 7094/udp 7095 9092", "USER 65532:65532", "STOPSIGNAL SIGTERM"} {
		if !bytes.Contains(docker, []byte(w)) {
			t.Errorf("Dockerfile: no %q", w)
		}
	}
}
