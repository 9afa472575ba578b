// Package docscheck checks the repository's Markdown against the
// repository itself, so that its docs cannot quietly point at nothing:
//
//   - every relative link (inline `[text](path)`, image, or reference
//     definition `[name]: path`) must name a file or directory that exists,
//     and must stay inside the repository — a clone from the project's
//     public home has nothing outside it;
//   - every `make TARGET` written in code (a fenced block or an inline code
//     span) must name a target the root Makefile defines.
//
// Links with a scheme (https:, mailto:) and links to an anchor of the same
// page are not checked. Text inside code is not taken for links, and prose
// is not taken for make commands ("make sure" is not a target).
//
// CheckImportTable keeps the package table of docs/architecture.md true:
// each package's imports of the module, as its non-test Go files have
// them, must be the ones its row lists. CheckPackageList keeps README.md's
// package table naming every package and nothing else. CheckNamedCode
// keeps the tests the docs name (a correctness rule's "shown by") and the
// repository files they name existing, and CheckIndex docs/README.md
// linking to every page of docs/.
//
// The tests of this package run them all on the repository, so `go test
// ./...` (and with it `make test` and `make ci`) fails on a broken link, a
// make target that does not exist, a package table that no longer matches
// the code, or a test or file the docs name that is gone.
package docscheck

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one broken reference: where it is and what is wrong.
type Problem struct {
	File string // path relative to the repository root, slash-separated
	Line int    // 1-based; 0 when the problem is a missing line
	What string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.What)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.What)
}

var (
	// [text](target) or ![alt](target), with an optional "title".
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// [name]: target at the start of a line.
	refDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	// `code` spans (one or more backticks).
	codeSpan = regexp.MustCompile("(`+)([^`]|[^`].*?[^`])(`+)")
	// a URL scheme: https:, mailto:, ...
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	// make and its arguments, up to a shell separator.
	makeCmd = regexp.MustCompile(`(?:^|[\s;&|(])make((?:\s+[^\s;&|)#]+)+)`)
	// a Makefile rule: targets, a colon, not an assignment (:= ::=).
	makeRule = regexp.MustCompile(`^([^\s#:=][^:=]*):(?:[^=:]|$)`)
)

// Check walks the Markdown files under root (skipping hidden directories
// and bin/) and returns every broken link and every make target that the
// Makefile at root does not define, sorted by file and line.
func Check(root string) ([]Problem, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	targets, err := MakeTargets(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	var problems []Problem
	err = walkMarkdown(root, func(path string) error {
		ps, err := checkFile(root, path, targets)
		problems = append(problems, ps...)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortProblems(problems)
	return problems, nil
}

// walkMarkdown calls fn with the path of every Markdown file under root,
// skipping hidden directories and bin/.
func walkMarkdown(root string, fn func(path string) error) error {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".md") {
			return nil
		}
		return fn(path)
	})
	if err != nil {
		return fmt.Errorf("docscheck: walk %s: %w", root, err)
	}
	return nil
}

// sortProblems orders problems by file, then line.
func sortProblems(problems []Problem) {
	sort.Slice(problems, func(i, j int) bool {
		if problems[i].File != problems[j].File {
			return problems[i].File < problems[j].File
		}
		return problems[i].Line < problems[j].Line
	})
}

// MakeTargets returns the targets the Makefile at path defines.
func MakeTargets(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("docscheck: make targets: %w", err)
	}
	targets := make(map[string]bool)
	for _, line := range strings.Split(string(data), "\n") {
		m := makeRule.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, t := range strings.Fields(m[1]) {
			targets[t] = true
		}
	}
	return targets, nil
}

// checkFile checks the links and make commands of one Markdown file.
func checkFile(root, path string, targets map[string]bool) ([]Problem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	defer f.Close()
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	rel = filepath.ToSlash(rel)

	var problems []Problem
	add := func(line int, format string, args ...any) {
		problems = append(problems, Problem{File: rel, Line: line, What: fmt.Sprintf(format, args...)})
	}
	checkMake := func(line int, code string) {
		for _, m := range makeCmd.FindAllStringSubmatch(code, -1) {
			for _, arg := range strings.Fields(m[1]) {
				if strings.HasPrefix(arg, "-") || strings.Contains(arg, "=") {
					continue // a flag or a variable, not a target
				}
				if !targets[arg] {
					add(line, "make target %q is not in the Makefile", arg)
				}
			}
		}
	}
	checkLink := func(line int, target string) {
		if scheme.MatchString(target) || strings.HasPrefix(target, "#") {
			return
		}
		if i := strings.IndexAny(target, "#?"); i >= 0 {
			target = target[:i]
		}
		var abs string
		if strings.HasPrefix(target, "/") {
			abs = filepath.Join(root, filepath.FromSlash(target)) // repository-absolute, as GitHub reads it
		} else {
			abs = filepath.Join(filepath.Dir(path), filepath.FromSlash(target))
		}
		inside, err := filepath.Rel(root, abs)
		if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
			add(line, "link %q points outside the repository", target)
			return
		}
		if _, err := os.Stat(abs); err != nil {
			add(line, "link %q: no such file in the repository", target)
		}
	}

	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	fence := "" // the opening fence while inside a fenced code block
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			} else {
				checkMake(n, line)
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			checkMake(n, m[2])
		}
		prose := codeSpan.ReplaceAllString(line, "")
		if m := refDef.FindStringSubmatch(prose); m != nil {
			checkLink(n, m[1])
		}
		for _, m := range inlineLink.FindAllStringSubmatch(prose, -1) {
			checkLink(n, m[1])
		}
	}
	if err := sc.Err(); err != nil {
		return problems, fmt.Errorf("docscheck: read %s: %w", rel, err)
	}
	return problems, nil
}

// PackageImports returns, for every package directory under root that has
// non-test Go files, the packages of module it imports (both relative to
// the module path, slash-separated, sorted). Build constraints are not
// evaluated: a file for any platform counts.
func PackageImports(root, module string) (map[string][]string, error) {
	fset := token.NewFileSet()
	imports := make(map[string]map[string]bool)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if imports[pkg] == nil {
			imports[pkg] = make(map[string]bool)
		}
		for _, spec := range f.Imports {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", path, spec.Path.Value, err)
			}
			if ours, ok := strings.CutPrefix(p, module+"/"); ok {
				imports[pkg][ours] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("docscheck: package imports: %w", err)
	}
	out := make(map[string][]string, len(imports))
	for pkg, set := range imports {
		out[pkg] = sortedKeys(set)
	}
	return out, nil
}

// ModulePath returns the module path that go.mod at root declares.
func ModulePath(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("docscheck: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`), nil
		}
	}
	return "", fmt.Errorf("docscheck: no module line in %s/go.mod", root)
}

// backticked finds `name` in a table cell.
var backticked = regexp.MustCompile("`([^`]+)`")

// tableRow is a row of a Markdown table whose first cell names packages in
// backticks.
type tableRow struct {
	line  int
	names []string
	last  string // the last cell, trimmed
}

// packageRows returns the rows under the heading named section (any level)
// whose first cell names something in backticks.
func packageRows(path, section string) ([]tableRow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	var rows []tableRow
	in := false
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") {
			in = strings.TrimSpace(strings.TrimLeft(line, "#")) == section
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 2 {
			continue
		}
		row := tableRow{line: i + 1, last: strings.TrimSpace(cells[len(cells)-1])}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			row.names = append(row.names, m[1])
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("docscheck: %s: no package table under %q", path, section)
	}
	return rows, nil
}

// ImportTable reads the package table of a Markdown file: the rows under
// the heading named section whose first cell names packages in backticks
// and whose last cell lists their imports ("none" for no imports, "—" for
// packages of test files only, which are not checked). It returns the
// imports of each package named, sorted, and the line of its row.
func ImportTable(path, section string) (map[string][]string, map[string]int, error) {
	rows, err := packageRows(path, section)
	if err != nil {
		return nil, nil, err
	}
	imports := make(map[string][]string)
	lines := make(map[string]int)
	for _, row := range rows {
		if row.last == "—" {
			continue
		}
		var deps []string
		if row.last != "none" {
			for _, d := range strings.Split(row.last, ",") {
				deps = append(deps, strings.TrimSpace(d))
			}
			sort.Strings(deps)
		}
		for _, name := range row.names {
			imports[name] = deps
			lines[name] = row.line
		}
	}
	return imports, lines, nil
}

// CheckPackageList reports every package of the code under root that the
// table under section in the Markdown file at path does not name, and
// every name in the table that is not a package.
func CheckPackageList(root, path, section string) ([]Problem, error) {
	code, rel, err := codeAndDoc(root, path)
	if err != nil {
		return nil, err
	}
	rows, err := packageRows(path, section)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	named := make(map[string]bool)
	for _, row := range rows {
		for _, name := range row.names {
			named[name] = true
			if _, ok := code[name]; !ok {
				problems = append(problems, Problem{File: rel, Line: row.line, What: fmt.Sprintf("package %s is in the table but not in the code", name)})
			}
		}
	}
	for _, pkg := range sortedKeys(code) {
		if !named[pkg] {
			problems = append(problems, Problem{File: rel, What: fmt.Sprintf("package %s is not in the table under %q", pkg, section)})
		}
	}
	return problems, nil
}

// CheckImportTable compares the package table of the Markdown file at path
// (see ImportTable) with the imports of the code under root.
func CheckImportTable(root, path, section string) ([]Problem, error) {
	code, rel, err := codeAndDoc(root, path)
	if err != nil {
		return nil, err
	}
	doc, lines, err := ImportTable(path, section)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	for _, pkg := range sortedKeys(code) {
		want, ok := doc[pkg]
		switch {
		case !ok:
			problems = append(problems, Problem{File: rel, What: fmt.Sprintf("package %s is not in the table under %q", pkg, section)})
		case strings.Join(want, ", ") != strings.Join(code[pkg], ", "):
			problems = append(problems, Problem{File: rel, Line: lines[pkg], What: fmt.Sprintf("package %s imports %q, the table says %q", pkg, strings.Join(code[pkg], ", "), strings.Join(want, ", "))})
		}
	}
	for _, pkg := range sortedKeys(doc) {
		if _, ok := code[pkg]; !ok {
			problems = append(problems, Problem{File: rel, Line: lines[pkg], What: fmt.Sprintf("package %s is in the table but not in the code", pkg)})
		}
	}
	return problems, nil
}

// codeAndDoc returns the module's package imports (PackageImports) and the
// Markdown file's path relative to root, for a Problem.
func codeAndDoc(root, path string) (map[string][]string, string, error) {
	module, err := ModulePath(root)
	if err != nil {
		return nil, "", err
	}
	code, err := PackageImports(root, module)
	if err != nil {
		return nil, "", err
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return nil, "", fmt.Errorf("docscheck: %w", err)
	}
	return code, filepath.ToSlash(rel), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	// a test function's declaration in a _test.go file.
	testFunc = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark|Example)\w*)\(`)
	// a test function named in Markdown: Test, Fuzz or Benchmark, then a
	// capital letter or an underscore (TestX, Test_x; not "Tests").
	testName = regexp.MustCompile(`\b((?:Test|Fuzz|Benchmark)[A-Z_]\w*)`)
	// a path of a Go file, a script or a deploy file: segment/segment.go.
	codePath = regexp.MustCompile(`\b[a-z][\w.-]*(?:/[\w.-]+)+\.(?:go|sh|yaml|yml|json)\b`)
)

// TestFuncs returns the names of the test, fuzz, benchmark and example
// functions that the _test.go files under root declare.
func TestFuncs(root string) (map[string]bool, error) {
	names := make(map[string]bool)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(data), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("docscheck: test functions: %w", err)
	}
	return names, nil
}

// CheckNamedCode reports, in every Markdown file under root, each test
// function (TestX, FuzzX, BenchmarkX) that no _test.go file declares, and
// each path of a file in the repository (log/commit.go: a path whose first
// directory is one of root's) that does not exist: the docs say which test
// shows a rule and where it is enforced, and a rename must not leave them
// pointing at nothing. On a line with -run a name is a pattern and stands
// for every test it begins; FuzzXxx and TestXxx are placeholders.
func CheckNamedCode(root string) ([]Problem, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	funcs, err := TestFuncs(root)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	topDirs := make(map[string]bool)
	for _, e := range entries {
		if e.IsDir() {
			topDirs[e.Name()] = true
		}
	}
	exists := func(name string, prefix bool) bool {
		if funcs[name] || strings.HasSuffix(name, "Xxx") {
			return true
		}
		if prefix {
			for f := range funcs {
				if strings.HasPrefix(f, name) {
					return true
				}
			}
		}
		return false
	}
	var problems []Problem
	err = walkMarkdown(root, func(path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		for i, line := range strings.Split(string(data), "\n") {
			pattern := strings.Contains(line, "-run")
			for _, m := range testName.FindAllStringSubmatch(line, -1) {
				if !exists(m[1], pattern) {
					problems = append(problems, Problem{File: rel, Line: i + 1, What: fmt.Sprintf("test %s is not in any _test.go file", m[1])})
				}
			}
			for _, p := range codePath.FindAllString(line, -1) {
				if first, _, _ := strings.Cut(p, "/"); !topDirs[first] {
					continue // another repository's (hashicorp/raft:api.go) or not a path
				}
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err != nil {
					problems = append(problems, Problem{File: rel, Line: i + 1, What: fmt.Sprintf("file %s does not exist", p)})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortProblems(problems)
	return problems, nil
}

// CheckIndex reports every Markdown page in the directory dir (relative to
// root) that the index page dir/README.md does not link to: a page no index
// names is a page no reader finds.
func CheckIndex(root, dir string) ([]Problem, error) {
	index := filepath.Join(root, dir, "README.md")
	data, err := os.ReadFile(index)
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	linked := make(map[string]bool)
	for _, m := range inlineLink.FindAllStringSubmatch(string(data), -1) {
		target, _, _ := strings.Cut(m[1], "#")
		linked[filepath.Clean(target)] = true
	}
	entries, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("docscheck: %w", err)
	}
	rel := filepath.ToSlash(filepath.Join(dir, "README.md"))
	var problems []Problem
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".md") || e.Name() == "README.md" {
			continue
		}
		if !linked[e.Name()] {
			problems = append(problems, Problem{File: rel, What: fmt.Sprintf("page %s is not in the index", e.Name())})
		}
	}
	return problems, nil
}
