package httpapi_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Prometheus rules in deploy/prometheus: alerts.yml and its promtool
// unit tests, alerts_test.yml.
const (
	alertsFile     = "../deploy/prometheus/alerts.yml"
	alertsTestFile = "../deploy/prometheus/alerts_test.yml"
)

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readAlerts(t *testing.T) []alertRule {
	t.Helper()
	text, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(text, &doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []alertRule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): the alert rules are not checked")
	}
	return bin
}

// TestAlertRules checks deploy/prometheus/alerts.yml with promtool (the
// rules parse) and runs its unit tests, alerts_test.yml, which fire and
// do not fire each alert on synthetic series.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	if out, err := exec.Command(bin, "check", "rules", alertsFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "test", "rules", alertsTestFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestAlertRulesShape checks what every rule must carry: a severity, a
// summary and a description naming the command to run, and a for:
// (but for fsync failures, which page at once).
func TestAlertRulesShape(t *testing.T) {
	rules := readAlerts(t)
	if len(rules) < 10 {
		t.Fatalf("%d rules in %s", len(rules), alertsFile)
	}
	for _, r := range rules {
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, sev)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("%s: no summary", r.Alert)
		}
		d := r.Annotations["description"]
		if !strings.Contains(d, "`sluice cluster status") && !strings.Contains(d, "`sluice topic describe") && !strings.Contains(d, "`sluice queue describe") {
			t.Errorf("%s: the description names none of `sluice cluster status`, `sluice topic describe`, `sluice queue describe`: %q", r.Alert, d)
		}
		if r.For == "" && r.Alert != "SluiceFsyncErrors" {
			t.Errorf("%s: no for:", r.Alert)
		}
	}
}

// TestAlertUnitTestsFire makes each rule of alerts.yml, one at a time,
// one that never fires, and runs the unit tests against it: they must
// fail, so each alert has a test that expects it to fire.
func TestAlertUnitTestsFire(t *testing.T) {
	bin := promtool(t)
	if testing.Short() {
		t.Skip("runs promtool once per rule")
	}
	text, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(alertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	expr := regexp.MustCompile(`(?m)^(\s+expr:) .*$`)
	locs := expr.FindAllSubmatchIndex(text, -1)
	rules := readAlerts(t)
	if len(locs) != len(rules) {
		t.Fatalf("%d expr: lines for %d rules", len(locs), len(rules))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, loc := range locs {
		mutant := string(text[:loc[3]]) + " vector(0) > 1" + string(text[loc[1]:])
		if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(mutant), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "test", "rules", "alerts_test.yml")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("%s never firing: the unit tests still pass\n%s", rules[i].Alert, out)
		}
	}
}
