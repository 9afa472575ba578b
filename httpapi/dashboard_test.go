package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/httpapi"
	"github.com/sluicemq/sluice/internal/poll"
	"github.com/sluicemq/sluice/internal/testcluster"
)

const dashboardFile = "../deploy/grafana/sluice.json"

// grafanaPanel is what the test reads of a dashboard panel.
type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

// dashboardExprs reads the dashboard and returns its queries by panel
// title, checking its shape on the way: every panel but a row queries
// the ${datasource} variable and has at least one expression.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	text, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string         `json:"title"`
		UID        string         `json:"uid"`
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(text, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Fatalf("%s: title %q uid %q", dashboardFile, d.Title, d.UID)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Contains(vars, "datasource") || !slices.Contains(vars, "job") {
		t.Fatalf("%s: variables %v, want datasource and job", dashboardFile, vars)
	}
	out := map[string][]string{}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("panel %q: want a ${datasource} query, has %+v and %d targets", p.Title, p.Datasource, len(p.Targets))
			}
			if _, dup := out[p.Title]; dup {
				t.Errorf("two panels titled %q", p.Title)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return out
}

var sluiceName = regexp.MustCompile(`\bsluice_[a-z0-9_]+`)

// TestDashboardAndAlertsUseExportedMetrics reads the Grafana dashboard
// and the alert rules and checks that every sluice_ metric their
// expressions name is one a real broker exports at the default level
// (after a produce, a consume, a group's commit and a queue group's
// receive, so that every
// family has series), and, with promtool, that every dashboard
// expression parses as PromQL.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	byPanel := dashboardExprs(t)
	used := map[string][]string{} // metric → where
	for title, exprs := range byPanel {
		for _, e := range exprs {
			for _, name := range sluiceName.FindAllString(e, -1) {
				used[name] = append(used[name], "panel "+title)
			}
		}
	}
	for _, r := range readAlerts(t) {
		for _, name := range sluiceName.FindAllString(r.Expr, -1) {
			used[name] = append(used[name], "alert "+r.Alert)
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d sluice_ metrics used: %v", len(used), used)
	}

	o := startObserved(t, 1, httpapi.LevelInfo, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := o.Client()
	testcluster.CreateTopic(t, cl, client.TopicSpec{Name: "d", Partitions: 1, ReplicationFactor: 1})
	if err := cl.ProduceSync(ctx, &client.Record{Topic: "d", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	cl.Assign(map[client.TopicPartition]client.Offset{{Topic: "d", Partition: 0}: client.AtStart()})
	if f, err := cl.Poll(ctx); err != nil || len(f.Records) == 0 {
		t.Fatalf("poll: %v %v", f, err)
	}
	poll.Until(t, 20*time.Second, "a commit of group dash", func() error {
		_, err := cl.ResetOffsets(ctx, "dash", "d", client.ResetToEarliest(), true)
		return err
	})
	// And a queue group holding a record, for the sluice_queue_ series.
	if ds, err := cl.QueueGroup("dashq", "d").Receive(ctx, 1); err != nil || len(ds) != 1 {
		t.Fatalf("queue receive: %v %v", ds, err)
	}
	exported := map[string]bool{}
	for name, f := range scrape(t, o.servers[1].Addr()) {
		exported[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[name+s] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		if !exported[name] {
			t.Errorf("%s, used by %s, is not exported", name, strings.Join(used[name], ", "))
		}
	}

	// Every dashboard expression, with Grafana's variables given values,
	// as a recording rule: promtool check rules parses each one.
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: the dashboard's expressions are not parsed")
		return
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", "sluice")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, title := range slices.Sorted(maps.Keys(byPanel)) {
		for i, e := range byPanel[title] {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel_%d_%d", len(rules), i), Expr: vars.Replace(e)})
		}
	}
	text, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(file, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("the dashboard's expressions do not parse: %v\n%s", err, out)
	}
}
