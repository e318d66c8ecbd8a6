package scaffold_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/internal/scaffold"
)

func TestGenerateOptions(t *testing.T) {
	notWxhub := t.TempDir()
	if err := os.WriteFile(filepath.Join(notWxhub, "go.mod"), []byte("module example.com/other\n\ngo 1.26\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		given   scaffold.Options
		wantErr string
	}{
		{"bad name", scaffold.Options{Name: "Leave!", Wxhub: "../.."}, `connector name "Leave!"`},
		{"bad lang", scaffold.Options{Name: "leave", Lang: "rust", Wxhub: "../.."}, `--lang "rust"`},
		{"no checkout", scaffold.Options{Name: "leave"}, "--wxhub"},
		{"not a wxhub checkout", scaffold.Options{Name: "leave", Wxhub: notWxhub}, `module "example.com/other"`},
		{"dir not empty", scaffold.Options{Name: "leave", Wxhub: "../..", Dir: full}, "not empty"},
		{"keyword with a quote", scaffold.Options{Name: "leave", Wxhub: "../..", Keyword: `a"b`}, "keyword"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scaffold.Generate(tt.given)
			if !errors.Is(err, scaffold.ErrOptions) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrOptions mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// What is generated, per language (building it and running the kit is
// e2e/scaffold_test.go's job).
func TestGenerateFiles(t *testing.T) {
	for _, tt := range []struct {
		lang string
		want []string
	}{
		{scaffold.LangGo, []string{"Dockerfile", "README.md", "conformance_test.go", "go.mod", "go.sum", "handler.go", "main.go", "routing.yaml"}},
		{scaffold.LangNode, []string{"Dockerfile", "README.md", "conformance_test.go", "go.mod", "go.sum", "index.js", "package.json", "routing.yaml"}},
	} {
		t.Run(tt.lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "leave")
			files, err := scaffold.Generate(scaffold.Options{Name: "leave", Lang: tt.lang, Dir: dir, Keyword: "假期", Wxhub: "../.."})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(files)
			if !slices.Equal(files, tt.want) {
				t.Fatalf("files %v, want %v", files, tt.want)
			}
			mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			root, _ := filepath.Abs("../..")
			if !strings.Contains(string(mod), "replace github.com/wxhub/wxhub => "+root+"\n") || !strings.Contains(string(mod), "module example.com/leave-connector\n") {
				t.Errorf("go.mod:\n%s", mod)
			}
			rule, _ := os.ReadFile(filepath.Join(dir, "routing.yaml"))
			for _, want := range []string{`keywords: ["假期"]`, "to: leave", `password: "${LEAVE_NATS_PASSWORD}", connector: leave`} {
				if !strings.Contains(string(rule), want) {
					t.Errorf("routing.yaml lacks %q:\n%s", want, rule)
				}
			}
			for _, f := range files {
				if b, _ := os.ReadFile(filepath.Join(dir, f)); strings.Contains(string(b), "{{") || strings.Contains(string(b), "<no value>") {
					t.Errorf("%s: template left unfilled", f)
				}
			}
		})
	}
}
