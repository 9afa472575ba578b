package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// sluice version and sluice --version print what the build stamped, and
// the Go version.
func TestVersion(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "v1.2.3", "0123abc", "2026-12-04T00:45:00Z"
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, w := range []string{"sluice v1.2.3\n", "commit:     0123abc\n", "built:      2026-12-04T00:45:00Z\n", runtime.Version()} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: no %q in:\n%s", args, w, out.String())
			}
		}
		outs = append(outs, out.String())
	}
	if outs[0] != outs[1] {
		t.Errorf("version and --version differ:\n%s\n%s", outs[0], outs[1])
	}
}

// Without -ldflags every field still says something: what the toolchain
// recorded, or unknown.
func TestVersionUnstamped(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "", "", ""
	v := buildInfo()
	for name, f := range map[string]string{"version": v.Version, "commit": v.Commit, "build date": v.BuildDate} {
		if f == "" {
			t.Errorf("%s empty", name)
		}
	}
}
