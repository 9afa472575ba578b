package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicemq/sluice/broker"
)

// brokerFlags is the broker command's flag set after parsing args, as
// RunE sees it.
func brokerFlags(t *testing.T, args ...string) (*cobra.Command, *pflag.FlagSet) {
	t.Helper()
	cmd := newBrokerCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return cmd, cmd.LocalFlags()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// A setting comes from the flag, else the environment, else the file,
// else the default, and the sources say which.
func TestSettingsPrecedence(t *testing.T) {
	path := writeFile(t, `
listen: 0.0.0.0:7092       # file only
rack: file-rack            # file and env
replica-max-lag: 3s        # file, env and flag
gossip-seeds: [a:7094, b:7094]
`)
	_, fs := brokerFlags(t, "--replica-max-lag", "5s", "--config", path)
	env := fakeEnv(map[string]string{"SLUICE_RACK": "env-rack", "SLUICE_REPLICA_MAX_LAG": "4s", "SLUICE_BROKER_ID": "7"})
	sources, err := loadSettings(fs, path, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, value string
		from       settingSource
	}{
		{"listen", "0.0.0.0:7092", fromFile},
		{"rack", "env-rack", fromEnv},
		{"replica-max-lag", "5s", fromFlag},
		{"broker-id", "7", fromEnv},
		{"gossip-seeds", "a:7094,b:7094", fromFile},
		{"data-dir", "./data", fromDefault},
	} {
		if got := fs.Lookup(c.key).Value.String(); got != c.value {
			t.Errorf("%s = %q, want %q", c.key, got, c.value)
		}
		if sources[c.key] != c.from {
			t.Errorf("%s from %q, want %q", c.key, sources[c.key], c.from)
		}
	}
	if _, ok := sources["config"]; ok {
		t.Error("--config is listed as a setting")
	}
}

// SLUICE_CONFIG names the file when --config does not.
func TestSettingsConfigFromEnv(t *testing.T) {
	path := writeFile(t, "rack: r9\n")
	_, fs := brokerFlags(t)
	if _, err := loadSettings(fs, "", fakeEnv(map[string]string{"SLUICE_CONFIG": path})); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("rack").Value.String(); got != "r9" {
		t.Errorf("rack = %q, want r9 from the file SLUICE_CONFIG names", got)
	}
}

// A flag added to the broker command (as other front ends add theirs) is
// a setting without further code.
func TestSettingsCoverNewFlags(t *testing.T) {
	cmd := newBrokerCmd()
	cmd.Flags().String("test-only-listen", "", "a flag added after this test was written")
	cmd.Flags().Int("test-only-limit", 1, "a limit")
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	fs := cmd.LocalFlags()
	path := writeFile(t, "test-only-listen: 0.0.0.0:9092\n")
	if _, err := loadSettings(fs, path, fakeEnv(map[string]string{"SLUICE_TEST_ONLY_LIMIT": "5"})); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("test-only-listen").Value.String(); got != "0.0.0.0:9092" {
		t.Errorf("test-only-listen = %q", got)
	}
	if got := fs.Lookup("test-only-limit").Value.String(); got != "5" {
		t.Errorf("test-only-limit = %q", got)
	}
}

// Unknown keys and bad values stop the broker at start, with the key and
// the reason.
func TestSettingsRefused(t *testing.T) {
	for _, c := range []struct {
		name, file string
		env        map[string]string
		want       []string // substrings of the error
	}{
		{"unknown key", "listen: a:1\nlisten-addr: b:2\n", nil, []string{"line 2: key listen-addr", "unknown setting"}},
		{"bad duration", "replica-max-lag: soon\n", nil, []string{"key replica-max-lag", `"soon"`, "want a duration", "invalid duration"}},
		{"bad int", "max-connections: many\n", nil, []string{"key max-connections", "want a int"}},
		{"int out of range", "broker-id: 99999999999\n", nil, []string{"key broker-id", "out of range"}},
		{"no value", "rack:\n", nil, []string{"key rack", "no value"}},
		{"a mapping", "rack: {a: 1}\n", nil, []string{"key rack", "not a mapping"}},
		{"a nested list", "gossip-seeds: [[a]]\n", nil, []string{"key gossip-seeds", "only values"}},
		{"set twice", "rack: a\nrack: b\n", nil, []string{"key rack"}},
		{"config in the file", "config: other.yaml\n", nil, []string{"key config", "unknown setting"}},
		{"not a mapping", "- listen: a:1\n", nil, []string{"want a mapping"}},
		{"two documents", "rack: a\n---\nrack: b\n", nil, []string{"one YAML document"}},
		{"not YAML", "rack: [a\n", nil, []string{"config file"}},
		{"bad env", "", map[string]string{"SLUICE_MEMORY_BUDGET": "1GB"}, []string{"environment", `SLUICE_MEMORY_BUDGET="1GB"`, "want a int64"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, c.file)
			_, fs := brokerFlags(t)
			_, err := loadSettings(fs, path, fakeEnv(c.env))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// An empty file, or one of comments only, sets nothing.
func TestSettingsEmptyFile(t *testing.T) {
	for _, text := range []string{"", "# nothing yet\n"} {
		_, fs := brokerFlags(t)
		sources, err := loadSettings(fs, writeFile(t, text), fakeEnv(nil))
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if sources["listen"] != fromDefault {
			t.Errorf("%q: listen from %q", text, sources["listen"])
		}
	}
}

// --print-config prints a file that loads back to the same settings.
func TestPrintConfigLoadsBack(t *testing.T) {
	path := writeFile(t, "listen: 0.0.0.0:7092\nrack: \"true\"\nvoters: 1@a:7093,2@b:7093\nadvertised-addr: \"\"\n")
	_, fs := brokerFlags(t, "--broker-id", "2", "--replica-max-lag", "1m30s", "--max-connections-per-ip", "-1")
	sources, err := loadSettings(fs, path, fakeEnv(map[string]string{"SLUICE_LOG_LEVEL": "warn", "SLUICE_MAX_QUEUE_GROUPS": "50"}))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printSettings(&out, fs, sources); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"broker-id: 2 # flag", `rack: "true" # file`, "log-level: warn # env", "data-dir: ./data # default",
		"max-queue-groups: 50 # env", "offsets-retention: 168h0m0s # default",
		"# this broker's rack, for replica placement (env SLUICE_RACK)"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("no %q in:\n%s", w, out.String())
		}
	}
	_, again := brokerFlags(t)
	if _, err := loadSettings(again, writeFile(t, out.String()), fakeEnv(nil)); err != nil {
		t.Fatalf("the printed config does not load: %v\n%s", err, out.String())
	}
	for _, f := range settingFlags(fs) {
		if got, want := again.Lookup(f.Name).Value.String(), f.Value.String(); got != want {
			t.Errorf("%s: printed and loaded back as %q, was %q", f.Name, got, want)
		}
	}
}

// Through the command: --print-config prints and exits, and a bad file
// stops the broker before it starts, naming the key.
func TestBrokerCommandConfig(t *testing.T) {
	t.Setenv("SLUICE_GOSSIP_SEEDS", "c:7094")
	path := writeFile(t, "listen: 127.0.0.1:0\ndata-dir: "+t.TempDir()+"\n")
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"broker", "--config", path, "--print-config"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "listen: 127.0.0.1:0 # file") || !strings.Contains(out.String(), "gossip-seeds: c:7094 # env") {
		t.Errorf("--print-config printed:\n%s", out.String())
	}

	bad := writeFile(t, "listen: 127.0.0.1:0\nmax-conections: 5\n")
	root = newRootCmd()
	root.SetArgs([]string{"broker", "--config", bad})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "max-conections") {
		t.Fatalf("a misspelt key: %v", err)
	}

	// Settings valid one by one but not together are refused too.
	root = newRootCmd()
	root.SetOut(new(bytes.Buffer))
	root.SetArgs([]string{"broker", "--voters", "1@a:7093", "--broker-id", "2", "--print-config"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "not among Voters") {
		t.Fatalf("broker 2 outside the voters: %v", err)
	}
}

// FuzzReadConfigFile: any file is refused with an error or yields
// settings that are all broker flags; never a panic or a hang.
func FuzzReadConfigFile(f *testing.F) {
	for _, s := range []string{
		"listen: 0.0.0.0:7092\nrack: r1\n",
		"voters: [1@a:7093, 2@b:7093]\n",
		"rack:\n",
		"a: &a [*a]\n",
		"- x\n",
		"rack: a\n---\nrack: b\n",
		"{listen: {a: 1}}",
		"listen: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, fs := brokerFlags(t)
		settings, err := readConfigFile(fs, "fuzz.yaml", bytes.NewReader(data))
		if err != nil {
			return
		}
		for k := range settings {
			if fs.Lookup(k) == nil || notSettings[k] {
				t.Fatalf("accepted key %q, which is no setting", k)
			}
		}
		_, _ = applySettings(fs, settings, "fuzz.yaml", fakeEnv(nil))
	})
}

// --print-config never prints a secret's value, wherever it came from,
// and the placeholder it prints instead is refused if loaded back as the
// value; every setting named like a secret is either redacted or a path.
func TestSecretSettingsRedacted(t *testing.T) {
	const key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		file string
	}{
		{"flag", []string{"--gossip-key", key}, nil, ""},
		{"env", nil, map[string]string{"SLUICE_GOSSIP_KEY": key}, ""},
		{"file", nil, nil, "gossip-key: " + key + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, fs := brokerFlags(t, c.args...)
			path := ""
			if c.file != "" {
				path = writeFile(t, c.file)
			}
			sources, err := loadSettings(fs, path, fakeEnv(c.env))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := printSettings(&out, fs, sources); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), key) || strings.Contains(out.String(), key[:16]) {
				t.Fatalf("the gossip key is printed:\n%s", out.String())
			}
			if w := "gossip-key: " + redacted + " # " + c.name + ", redacted"; !strings.Contains(out.String(), w) {
				t.Fatalf("no %q in:\n%s", w, out.String())
			}
			_, again := brokerFlags(t)
			_, err = loadSettings(again, writeFile(t, out.String()), fakeEnv(nil))
			if err == nil || !strings.Contains(err.Error(), "gossip-key") || !strings.Contains(err.Error(), "SLUICE_GOSSIP_KEY") {
				t.Fatalf("the printed placeholder loaded back: %v", err)
			}
		})
	}

	// Unset, a secret prints as the empty default and loads back.
	_, fs := brokerFlags(t)
	var out bytes.Buffer
	if err := printSettings(&out, fs, map[string]settingSource{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `gossip-key: ""`) {
		t.Errorf("unset gossip-key printed:\n%s", out.String())
	}

	// A path-valued setting prints its path; one named like a secret must
	// be listed here or in secretSettings.
	paths := map[string]bool{"tls-key": true, "cluster-secret-file": true}
	secretLike := regexp.MustCompile(`secret|password|passwd|token|credential|key$`)
	for _, f := range settingFlags(fs) {
		if secretLike.MatchString(f.Name) && !secretSettings[f.Name] && !paths[f.Name] {
			t.Errorf("setting %s is named like a secret: add it to secretSettings (redacted) or, if it names a file, to this test's paths", f.Name)
		}
	}
}

// --cluster-secret-file: one secret, or during a rotation two lines, the
// first logged in with and the others accepted; each at least 16 bytes.
func TestClusterSecretFileLines(t *testing.T) {
	t.Setenv("SLUICE_CLUSTER_SECRET", "")
	for _, c := range []struct {
		text     string
		login    string
		accepted []string
		err      string
	}{
		{"  0123456789abcdef0123  \n", "0123456789abcdef0123", nil, ""},
		{"new-secret-0123456789\nold-secret-0123456789\n", "new-secret-0123456789", []string{"old-secret-0123456789"}, ""},
		{"\nnew-secret-0123456789\r\n\n old-secret-0123456789 \n", "new-secret-0123456789", []string{"old-secret-0123456789"}, ""},
		{"new-secret-0123456789\nshort\n", "", nil, "secret 2: 5 bytes"},
	} {
		path := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		var cfg broker.Config
		err := (&brokerSecurity{secretFile: path}).apply(&cfg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.text, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		var accepted []string
		for _, a := range cfg.Security.AcceptedClusterSecrets {
			accepted = append(accepted, string(a))
		}
		if string(cfg.Security.ClusterSecret) != c.login || !slices.Equal(accepted, c.accepted) {
			t.Errorf("%q: login %q, accepted %q", c.text, cfg.Security.ClusterSecret, accepted)
		}
	}
}
