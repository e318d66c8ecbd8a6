// Package scaffold generates a standalone wxhub connector project (`wxhub new
// connector`): the handler, a main that reads the standard WXHUB_* settings,
// a conformance-kit test against a fake legacy service, the routing rule, a
// Dockerfile and a README. What it generates builds and passes the kit as is.
package scaffold

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed templates
var templates embed.FS

// WxhubModule is the module path the generated Go code imports.
const WxhubModule = "github.com/wxhub/wxhub"

// Languages the scaffold knows.
const (
	LangGo   = "go"
	LangNode = "node"
)

// ErrOptions is wrapped by every invalid-option error.
var ErrOptions = errors.New("scaffold")

// Options says what to generate.
type Options struct {
	// Name is the connector's routing name and NATS user: a-z 0-9 _ -. Required.
	Name string
	// Lang is LangGo (default) or LangNode.
	Lang string
	// Dir is where to write; it must not exist or be empty. Default ./<Name>.
	Dir string
	// Module is the Go module path. Default example.com/<Name>-connector.
	Module string
	// Keyword is what the routing rule matches in a text. Default Name.
	Keyword string
	// Wxhub is a wxhub checkout (its go.mod says module github.com/wxhub/wxhub):
	// the generated go.mod replaces the module with it, as wxhub is not on the
	// module proxy. Required.
	Wxhub string
}

// Generate writes the project and returns the files written, relative to Dir.
func Generate(o Options) ([]string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	gomod, gosum, goVersion, err := moduleFiles(o)
	if err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%w: %s exists and is not empty", ErrOptions, o.Dir)
	}
	data := map[string]string{
		"Name": o.Name, "Lang": o.Lang, "Keyword": o.Keyword, "WxhubPath": o.Wxhub, "GoVersion": goVersion,
		"Dir": o.Dir, "PasswordVar": strings.ToUpper(strings.ReplaceAll(o.Name, "-", "_")) + "_NATS_PASSWORD",
		"LangName": map[string]string{LangGo: "Go", LangNode: "Node.js"}[o.Lang],
	}
	files := map[string][]byte{"go.mod": gomod, "go.sum": gosum}
	for _, sub := range []string{"templates/common", "templates/" + o.Lang} {
		entries, err := fs.ReadDir(templates, sub)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			t, err := template.ParseFS(templates, sub+"/"+e.Name())
			if err != nil {
				return nil, err
			}
			var b bytes.Buffer
			if err := t.Execute(&b, data); err != nil {
				return nil, fmt.Errorf("scaffold: %s: %w", e.Name(), err)
			}
			files[strings.TrimSuffix(e.Name(), ".tmpl")] = b.Bytes()
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(o.Dir, name), body, 0o644); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

func (o Options) withDefaults() (Options, error) {
	if !validName(o.Name) {
		return o, fmt.Errorf("%w: connector name %q: want 1-64 of a-z 0-9 _ - (it is the routing target and the NATS user)", ErrOptions, o.Name)
	}
	if o.Lang == "" {
		o.Lang = LangGo
	}
	if o.Lang != LangGo && o.Lang != LangNode {
		return o, fmt.Errorf("%w: --lang %q: want go or node", ErrOptions, o.Lang)
	}
	if o.Dir == "" {
		o.Dir = o.Name
	}
	if o.Module == "" {
		o.Module = "example.com/" + o.Name + "-connector"
	}
	if o.Keyword == "" {
		o.Keyword = o.Name
	}
	if strings.ContainsAny(o.Keyword, "\"\\\n{}") {
		return o, fmt.Errorf("%w: keyword %q: no quotes, braces, backslashes or newlines", ErrOptions, o.Keyword)
	}
	if o.Wxhub == "" {
		return o, fmt.Errorf("%w: the path of a wxhub checkout is required (--wxhub): the generated go.mod replaces %s with it", ErrOptions, WxhubModule)
	}
	var err error
	if o.Wxhub, err = filepath.Abs(o.Wxhub); err != nil {
		return o, err
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return o, err
	}
	return o, nil
}

// IsCheckout reports whether dir holds wxhub's go.mod.
func IsCheckout(dir string) bool {
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && modulePath(mod) == WxhubModule
}

// moduleFiles builds the project's go.mod from the checkout's: the same go
// version and requirements (so the build needs nothing wxhub does not), the
// wxhub requirement replaced by the checkout. go.sum is the checkout's.
func moduleFiles(o Options) (gomod, gosum []byte, goVersion string, err error) {
	mod, err := os.ReadFile(filepath.Join(o.Wxhub, "go.mod"))
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: --wxhub %s: %v", ErrOptions, o.Wxhub, err)
	}
	if p := modulePath(mod); p != WxhubModule {
		return nil, nil, "", fmt.Errorf("%w: --wxhub %s: its go.mod is module %q, want %s", ErrOptions, o.Wxhub, p, WxhubModule)
	}
	if gosum, err = os.ReadFile(filepath.Join(o.Wxhub, "go.sum")); err != nil {
		return nil, nil, "", fmt.Errorf("%w: --wxhub %s: %v", ErrOptions, o.Wxhub, err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "module %s\n\n", o.Module)
	var requires []string
	sc := bufio.NewScanner(bytes.NewReader(mod))
	inBlock := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "go "):
			goVersion = strings.TrimPrefix(line, "go ")
		case line == "require (":
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "" && !strings.HasPrefix(line, "//"):
			requires = append(requires, line)
		case strings.HasPrefix(line, "require "):
			requires = append(requires, strings.TrimPrefix(line, "require "))
		}
	}
	if goVersion == "" {
		return nil, nil, "", fmt.Errorf("%w: --wxhub %s: go.mod has no go directive", ErrOptions, o.Wxhub)
	}
	fmt.Fprintf(&b, "go %s\n\nrequire %s v0.0.0-00010101000000-000000000000\n\n", goVersion, WxhubModule)
	b.WriteString("// wxhub's own requirements, so that the build needs nothing new; `go mod tidy` trims them.\nrequire (\n")
	for _, r := range requires {
		fmt.Fprintf(&b, "\t%s\n", r)
	}
	fmt.Fprintf(&b, ")\n\n// wxhub is not on the module proxy: build against a checkout.\nreplace %s => %s\n", WxhubModule, o.Wxhub)
	return b.Bytes(), gosum, goVersion, nil
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
