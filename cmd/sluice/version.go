package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set by the build: go build -ldflags "-X main.version=v1.2.0 -X
// main.commit=... -X main.buildDate=..." (the Makefile's build, image and
// release targets do). Left empty, buildInfo fills them from what the Go
// toolchain recorded in the binary.
var (
	version   string
	commit    string
	buildDate string
)

// versionInfo describes this binary.
type versionInfo struct {
	Version   string // v1.2.0, a git describe, or "(devel)"
	Commit    string // the git commit, "+dirty" when the tree had changes; "unknown" when not recorded
	BuildDate string // RFC 3339; without -ldflags, the commit's time; "unknown" when not recorded
	GoVersion string
	Platform  string // GOOS/GOARCH
}

// buildInfo is what -ldflags set, completed from debug.ReadBuildInfo: the
// module version (set by go install module@version) and the VCS stamps
// go build records in a git checkout.
func buildInfo() versionInfo {
	v := versionInfo{Version: version, Commit: commit, BuildDate: buildDate,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		var rev, at string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if v.Commit == "" && rev != "" {
			v.Commit = rev
			if dirty {
				v.Commit += "+dirty"
			}
		}
		if v.BuildDate == "" && at != "" {
			v.BuildDate = at + " (commit time)"
		}
	}
	for _, f := range []*string{&v.Version, &v.Commit, &v.BuildDate} {
		if *f == "" {
			*f = "unknown"
		}
	}
	return v
}

// String is the text of sluice version and sluice --version.
func (v versionInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sluice %s\n", v.Version)
	fmt.Fprintf(&b, "  commit:     %s\n", v.Commit)
	fmt.Fprintf(&b, "  built:      %s\n", v.BuildDate)
	fmt.Fprintf(&b, "  go:         %s %s\n", v.GoVersion, v.Platform)
	return b.String()
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Long: `Print this binary's version, the git commit it was built from, when it was
built and with which Go. The Makefile stamps them (make build, make image);
a plain go build records the commit and its time, go install ...@vX.Y.Z the
version. sluice --version prints the same.`,
		Example: `  sluice version
  sluice --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), buildInfo())
			return err
		},
	}
}
