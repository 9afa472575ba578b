package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoDir is the module's root: deploy/Dockerfile's build context.
const repoDir = "../.."

// deploy/Dockerfile builds the binary in a build stage from GO_IMAGE, the
// official Go image for go.mod's Go version by default, statically, and
// ships it in a FROM scratch stage.
func TestDockerfileStages(t *testing.T) {
	docker, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(repoDir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDockerfile(string(docker), string(mod)); err != nil {
		t.Error(err)
	}
}

// checkDockerfile: the stages of a Dockerfile, and the build image's Go
// version against goMod's go directive.
func checkDockerfile(docker, goMod string) error {
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	if goVersion == nil {
		return fmt.Errorf("go.mod: no go directive")
	}
	def := regexp.MustCompile(`(?m)^ARG GO_IMAGE=(\S+)$`).FindStringSubmatch(docker)
	if def == nil {
		return fmt.Errorf("Dockerfile: no ARG GO_IMAGE=... before the stages")
	}
	if want := "golang:" + goVersion[1]; def[1] != want && !strings.HasPrefix(def[1], want+"-") {
		return fmt.Errorf("Dockerfile: GO_IMAGE defaults to %s, want the official image of go.mod's Go %s (%s or %s-...)", def[1], goVersion[1], want, want)
	}
	var froms []string
	for _, l := range strings.Split(docker, "\n") {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, l)
		}
	}
	if len(froms) != 2 || froms[0] != "FROM ${GO_IMAGE} AS build" || froms[1] != "FROM scratch" {
		return fmt.Errorf("Dockerfile: stages %q, want FROM ${GO_IMAGE} AS build, then FROM scratch", froms)
	}
	for _, w := range []string{"ENV CGO_ENABLED=0", "go build -trimpath", "-X main.version=${VERSION}", "COPY --from=build /out/sluice /usr/local/bin/sluice",
		"COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
		// /var/lib made before the data directory: else BuildKit's COPY
		// --chown gives /var and /var/lib to 65532 too.
		"COPY --from=build /out/var/ /var/\nCOPY --from=build --chown=65532:65532 /out/data/ /var/lib/sluice/"} {
		if !strings.Contains(docker, w) {
			return fmt.Errorf("Dockerfile: no %q", w)
		}
	}
	return nil
}

func TestCheckDockerfileFails(t *testing.T) {
	docker, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	good := string(docker)
	for _, c := range []struct{ name, docker, goMod string }{
		{"older Go than go.mod", good, "module m\n\ngo 1.99.0\n"},
		{"no default image", strings.Replace(good, "ARG GO_IMAGE=", "ARG GO_IMAGE_X=", 1), "go 1.26.0\n"},
		{"single stage", strings.Replace(good, "FROM ${GO_IMAGE} AS build\n", "", 1), "go 1.26.0\n"},
		{"final stage not scratch", strings.Replace(good, "FROM scratch", "FROM debian", 1), "go 1.26.0\n"},
		{"cgo", strings.Replace(good, "ENV CGO_ENABLED=0", "ENV CGO_ENABLED=1", 1), "go 1.26.0\n"},
	} {
		if err := checkDockerfile(c.docker, c.goMod); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

// .dockerignore keeps the build context small (no history, binaries or
// data directories) and leaves in everything the build reads: go.mod,
// go.sum, every Go source file but tests, the files they embed and the
// image's config file.
func TestDockerignore(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(repoDir, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns := dockerignorePatterns(t, text)
	needed := buildInputs(t)
	if len(needed) < 50 {
		t.Fatalf("only %d build inputs found: %v", len(needed), needed)
	}
	if bad := ignoredOf(patterns, needed); len(bad) > 0 {
		t.Errorf(".dockerignore leaves out files the image's build reads: %v", bad)
	}
	for _, p := range []string{".git/HEAD", "bin/sluice", "data/raft/log", "cmd/sluice/main_test.go", "log/testdata/x"} {
		if len(ignoredOf(patterns, []string{p})) == 0 {
			t.Errorf(".dockerignore: %s is in the build context", p)
		}
	}
	// A pattern that would leave out a source file is caught.
	for _, extra := range []string{"httpapi", "**/*.go", "go.sum", "deploy", "httpapi/static"} {
		if len(ignoredOf(append(patterns, extra), needed)) == 0 {
			t.Errorf("pattern %q: no build input reported as left out", extra)
		}
	}
}

// dockerignorePatterns: the patterns of a .dockerignore, one a line,
// comments and blank lines skipped. Exceptions (!) are not supported by
// ignoredOf: the file must have none.
func dockerignorePatterns(t *testing.T, text []byte) []string {
	t.Helper()
	var ps []string
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			t.Fatalf(".dockerignore: exception %q: this test does not match exceptions", l)
		}
		ps = append(ps, path.Clean(strings.TrimPrefix(l, "/")))
	}
	return ps
}

// ignoredOf: the paths (slash-separated, relative to the context) that a
// pattern leaves out, as docker does: a pattern matches a path or one of
// its parent directories, from the context's root; **/ matches any number
// of directories.
func ignoredOf(patterns, paths []string) []string {
	var out []string
	for _, p := range paths {
		parts := strings.Split(p, "/")
	match:
		for _, pat := range patterns {
			for i := 1; i <= len(parts); i++ {
				prefix := strings.Join(parts[:i], "/")
				if rest, ok := strings.CutPrefix(pat, "**/"); ok {
					for j := 0; j < i; j++ {
						if m, _ := path.Match(rest, strings.Join(parts[j:i], "/")); m {
							out = append(out, p)
							break match
						}
					}
				} else if m, _ := path.Match(pat, prefix); m {
					out = append(out, p)
					break match
				}
			}
		}
	}
	return out
}

// buildInputs: go.mod, go.sum, deploy/sluice.yaml, every non-test Go file
// of the module outside testdata and the files go:embed names.
func buildInputs(t *testing.T) []string {
	t.Helper()
	inputs := []string{"go.mod", "go.sum", "deploy/sluice.yaml"}
	embed := regexp.MustCompile(`(?m)^//go:embed (.+)$`)
	err := filepath.WalkDir(repoDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoDir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "data", "cluster", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		inputs = append(inputs, rel)
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range embed.FindAllStringSubmatch(string(src), -1) {
			for _, pat := range strings.Fields(m[1]) {
				pat = strings.TrimPrefix(pat, "all:")
				files, _ := filepath.Glob(filepath.Join(filepath.Dir(p), pat))
				if len(files) == 0 {
					t.Errorf("%s: go:embed %s matches nothing", rel, pat)
				}
				for _, f := range files {
					_ = filepath.WalkDir(f, func(q string, e fs.DirEntry, err error) error {
						if err == nil && !e.IsDir() {
							r, _ := filepath.Rel(repoDir, q)
							inputs = append(inputs, filepath.ToSlash(r))
						}
						return err
					})
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return inputs
}
