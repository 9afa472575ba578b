package docscheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryDocs is the check itself: every Markdown link in the
// repository resolves to a file inside it, and every `make` target the
// docs name is in the Makefile.
func TestRepositoryDocs(t *testing.T) {
	problems, err := Check(repoRoot(t))
	wantProblems(t, problems, err, nil)
}

// TestCheckFindsBrokenReferences feeds Check a small tree with every kind
// of broken reference it exists to catch, next to correct ones it must
// leave alone.
func TestCheckFindsBrokenReferences(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(filepath.Dir(root), "shared.md")
	write(t, outside, "# outside the repository\n")
	t.Cleanup(func() { os.Remove(outside) })
	write(t, filepath.Join(root, "Makefile"), strings.Join([]string{
		"PKGS ?= ./...",
		"BIN := bin/x",
		".PHONY: build test",
		"build:",
		"\tgo build ./...",
		"test lint: build",
		"\tgo test $(PKGS)",
		"",
	}, "\n"))
	write(t, filepath.Join(root, "docs", "a.md"), "# a\n")
	write(t, filepath.Join(root, ".hidden", "skipped.md"), "[gone](nowhere.md)\n")
	write(t, filepath.Join(root, "README.md"), strings.Join([]string{
		"# readme", // 1
		"See [a](docs/a.md), [a's part](docs/a.md#part), [docs](docs/), [top](/docs/a.md).", // 2
		"[web](https://example.com/x.md), [here](#readme), [mail](mailto:x@example.com).",   // 3
		"A [missing page](docs/missing.md) and ![a picture](img/none.png).",                 // 4
		"The design is in [DESIGN](../shared.md).",                                          // 5
		"[ref]: docs/gone.md", // 6
		"Code is not a link: `[x](nowhere.md)`; make sure prose is not a target.", // 7
		"Run `make build` and `make test PKGS=./log`, not `make deploy`.",         // 8
		"```sh",                        // 9
		"make lint && make -j2 chaos",  // 10
		"[not a link](inside/code.md)", // 11
		"```",                          // 12
		"",
	}, "\n"))

	problems, err := Check(root)
	wantProblems(t, problems, err, []string{
		`README.md:4: link "docs/missing.md": no such file in the repository`,
		`README.md:4: link "img/none.png": no such file in the repository`,
		`README.md:5: link "../shared.md" points outside the repository`,
		`README.md:6: link "docs/gone.md": no such file in the repository`,
		`README.md:8: make target "deploy" is not in the Makefile`,
		`README.md:10: make target "chaos" is not in the Makefile`,
	})
}

func TestMakeTargets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Makefile")
	write(t, path, "A := 1\nB ::= 2\nall: build\n\techo x: y\nbuild test:\n# gone:\n")
	got, err := MakeTargets(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"all", "build", "test"} {
		if !got[name] {
			t.Errorf("target %q not found in %v", name, got)
		}
	}
	for _, name := range []string{"A", "B", "echo", "gone", "x"} {
		if got[name] {
			t.Errorf("%q taken for a target: %v", name, got)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestArchitecturePackageTable keeps the package table of
// docs/architecture.md equal to the imports of the code.
func TestArchitecturePackageTable(t *testing.T) {
	root := repoRoot(t)
	problems, err := CheckImportTable(root, filepath.Join(root, "docs", "architecture.md"), "Packages and their imports")
	wantProblems(t, problems, err, nil)
}

// TestCheckImportTableFindsDrift feeds CheckImportTable a module whose
// table is wrong in each way it exists to catch.
func TestCheckImportTableFindsDrift(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "go.mod"), "module example.com/m\n\ngo 1.26\n")
	write(t, filepath.Join(root, "a", "a.go"), "package a\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/m/b\"\n\t\"example.com/m/c\"\n)\n\nvar _ = fmt.Sprint(b.X, c.X)\n")
	write(t, filepath.Join(root, "a", "a_test.go"), "package a\n\nimport _ \"example.com/m/d\"\n")
	write(t, filepath.Join(root, "b", "b.go"), "package b\n\nconst X = 1\n")
	write(t, filepath.Join(root, "c", "c.go"), "package c\n\nconst X = 2\n")
	write(t, filepath.Join(root, "d", "d_test.go"), "package d\n")
	doc := filepath.Join(root, "arch.md")
	write(t, doc, strings.Join([]string{
		"# arch",
		"## Other",
		"| `c` | not this table | a |",
		"## Packages",
		"| package | what | imports |",
		"|---|---|---|",
		"| `a` | uses b | b |",
		"| `b` | leaf | none |",
		"| `gone` | removed | none |",
		"| `d` | tests only | — |",
		"",
	}, "\n"))
	problems, err := CheckImportTable(root, doc, "Packages")
	wantProblems(t, problems, err, []string{
		`arch.md:7: package a imports "b, c", the table says "b"`,
		`arch.md: package c is not in the table under "Packages"`,
		`arch.md:9: package gone is in the table but not in the code`,
	})
}

// wantProblems fails the test unless a check returned exactly want.
func wantProblems(t *testing.T, problems []Problem, err error, want []string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReadmePackageTable keeps README.md's package table naming every
// package, and nothing else.
func TestReadmePackageTable(t *testing.T) {
	root := repoRoot(t)
	problems, err := CheckPackageList(root, filepath.Join(root, "README.md"), "Packages")
	wantProblems(t, problems, err, nil)
}

func TestCheckPackageListFindsDrift(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "go.mod"), "module example.com/m\n")
	write(t, filepath.Join(root, "a", "a.go"), "package a\n")
	write(t, filepath.Join(root, "b", "c", "c.go"), "package c\n")
	doc := filepath.Join(root, "README.md")
	write(t, doc, "## Packages\n\n| package | what |\n|---|---|\n| `a`, `old` | a and old |\n")
	problems, err := CheckPackageList(root, doc, "Packages")
	wantProblems(t, problems, err, []string{
		`README.md:5: package old is in the table but not in the code`,
		`README.md: package b/c is not in the table under "Packages"`,
	})
}

// TestDocsNameRealTests: every test the docs name (the correctness rules'
// "shown by", testing.md's -run patterns) and every file path they name in
// code exists.
func TestDocsNameRealTests(t *testing.T) {
	problems, err := CheckNamedCode(repoRoot(t))
	wantProblems(t, problems, err, nil)
}

func TestCheckNamedCodeFindsDrift(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "log", "log_test.go"), "package log\n\nfunc TestAppend(t *testing.T) {}\nfunc FuzzRecover(f *testing.F) {}\n")
	write(t, filepath.Join(root, "log", "commit.go"), "package log\n")
	write(t, filepath.Join(root, "docs", "a.md"), strings.Join([]string{
		"# a", // 1
		"`TestAppend`, `FuzzRecover` (log/commit.go), `FuzzXxx`: all there.",                      // 2
		"| R2 | `groupCommit.wait` (log/gone.go) | `TestAppendRenamed` |",                         // 3
		"`go test -run 'TestApp|FuzzRec' ./log` is a pattern; hashicorp/raft:api.go is not ours.", // 4
		"TestApp alone is a name, and so is BenchmarkAppend.",                                     // 5
		"",
	}, "\n"))
	problems, err := CheckNamedCode(root)
	wantProblems(t, problems, err, []string{
		`docs/a.md:3: test TestAppendRenamed is not in any _test.go file`,
		`docs/a.md:3: file log/gone.go does not exist`,
		`docs/a.md:5: test TestApp is not in any _test.go file`,
		`docs/a.md:5: test BenchmarkAppend is not in any _test.go file`,
	})
}

// TestDocsIndex: docs/README.md links to every page in docs/.
func TestDocsIndex(t *testing.T) {
	problems, err := CheckIndex(repoRoot(t), "docs")
	wantProblems(t, problems, err, nil)
}

func TestCheckIndexFindsMissingPage(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "docs", "README.md"), "| [a](a.md) | a |\n| [b's part](b.md#part) | b |\n")
	for _, page := range []string{"a.md", "b.md", "c.md"} {
		write(t, filepath.Join(root, "docs", page), "# page\n")
	}
	problems, err := CheckIndex(root, "docs")
	wantProblems(t, problems, err, []string{`docs/README.md: page c.md is not in the index`})
}
