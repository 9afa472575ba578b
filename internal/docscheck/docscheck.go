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
// The test of this package runs Check on the repository, so `go test ./...`
// (and with it `make test` and `make ci`) fails on a broken link.
package docscheck

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Problem is one broken reference: where it is and what is wrong.
type Problem struct {
	File string // path relative to the repository root, slash-separated
	Line int    // 1-based
	What string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.What) }

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
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
		ps, err := checkFile(root, path, targets)
		problems = append(problems, ps...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("docscheck: walk %s: %w", root, err)
	}
	sort.Slice(problems, func(i, j int) bool {
		if problems[i].File != problems[j].File {
			return problems[i].File < problems[j].File
		}
		return problems[i].Line < problems[j].Line
	})
	return problems, nil
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
