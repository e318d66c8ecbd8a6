// Package docs_test checks the code in docs/*.md: every ```go block is a
// complete file that this test builds, a quote of a Go file the tests compile,
// or an API listing; every ```js block quotes a file a test runs (the Node
// example, run through the conformance kit by its test). A marker on the line
// before the fence says which (js:quote for JavaScript):
//
//	(no marker)                          a complete file (package ...): built
//	<!-- go:quote path/to/file.go -->    its lines appear, in order, in that file
//	<!-- go:listing -->                  signatures, not a program: skipped
package docs_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type snippet struct {
	lang   string // go or js
	file   string // docs/x.md
	line   int    // of the fence
	marker string // "", "quote", "listing"
	arg    string
	code   string
}

var markerRE = regexp.MustCompile(`^<!--\s*(?:go|js):(quote|listing)\s*(\S*)\s*-->$`)

func snippets(t *testing.T) []snippet {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	var out []snippet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			fence := strings.TrimSpace(lines[i])
			if fence != "```go" && fence != "```js" {
				continue
			}
			s := snippet{lang: strings.TrimPrefix(fence, "```"), file: "docs/" + f, line: i + 1}
			for j := i - 1; j >= 0; j-- {
				if l := strings.TrimSpace(lines[j]); l != "" {
					if m := markerRE.FindStringSubmatch(l); m != nil {
						s.marker, s.arg = m[1], m[2]
					}
					break
				}
			}
			var code []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				code = append(code, lines[i])
			}
			s.code = strings.Join(code, "\n") + "\n"
			out = append(out, s)
		}
	}
	return out
}

// TestGoSnippetsCompile builds every complete Go file in the docs in one go
// build (an overlay puts each in its own package under docs/), checks quotes
// against their files, and refuses an unmarked fragment.
func TestGoSnippetsCompile(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	overlay := map[string]string{}
	var pkgs []string
	where := map[string]snippet{}
	for n, s := range snippets(t) {
		switch {
		case s.lang == "js" && s.marker != "quote":
			t.Errorf("%s:%d: a ```js block must quote a file a test runs (<!-- js:quote examples/node-connector/index.js -->)", s.file, s.line)
		case s.marker == "listing":
		case s.marker == "quote":
			if err := quoted(filepath.Join(root, s.arg), s.code); err != nil {
				t.Errorf("%s:%d: go:quote %s: %v", s.file, s.line, s.arg, err)
			}
		case strings.HasPrefix(strings.TrimSpace(s.code), "package "):
			pkg := fmt.Sprintf("snippet_%d", n)
			src := filepath.Join(tmp, pkg+".go")
			if err := os.WriteFile(src, []byte(s.code), 0o600); err != nil {
				t.Fatal(err)
			}
			overlay[filepath.Join(root, "docs", "_snippets", pkg, "snippet.go")] = src
			pkgs = append(pkgs, "./docs/_snippets/"+pkg)
			where[pkg] = s
		default:
			t.Errorf("%s:%d: a ```go block must be a complete file (package ...), a quote (<!-- go:quote path -->) or an API listing (<!-- go:listing -->)", s.file, s.line)
		}
	}
	if len(pkgs) == 0 {
		return
	}
	ov, _ := json.Marshal(map[string]any{"Replace": overlay})
	ovPath := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ovPath, ov, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"build", "-overlay", ovPath}, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := string(out)
		for pkg, s := range where { // name the doc, not the overlay
			msg = strings.ReplaceAll(msg, "docs/_snippets/"+pkg+"/snippet.go", fmt.Sprintf("%s (block at line %d)", s.file, s.line))
		}
		t.Fatalf("docs' Go does not build: %v\n%s", err, msg)
	}
}

// quoted reports whether every non-blank line of code appears in file, in
// order (leading and trailing space ignored), so a doc may quote part of it.
func quoted(file, code string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	var src []string
	for sc.Scan() {
		src = append(src, strings.TrimSpace(sc.Text()))
	}
	i := 0
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		for i < len(src) && src[i] != l {
			i++
		}
		if i == len(src) {
			return fmt.Errorf("line %q is not in the file (in this order)", l)
		}
		i++
	}
	return nil
}
