package tmpl_test

import (
	"testing"

	"github.com/wxhub/wxhub/internal/tmpl"
)

func TestFuncs(t *testing.T) {
	data := map[string]any{"s": "  hi  ", "n": 77.0, "l": []any{"a", 2.0}, "q": `a"b`, "code": 0.0, "long": "一二三四五"}
	tests := []struct{ name, given, want string }{
		{"trim upper", `{{ .s | trim | upper }}`, "HI"},
		{"default on missing", `{{ .missing | default "none" }}`, "none"},
		{"default keeps value", `{{ .n | default 1 }}`, "77"},
		{"json string", `{{ json .q }}`, `"a\"b"`},
		{"join", `{{ join "," .l }}`, "a,2"},
		{"int compare", `{{ if eq (int .code) 0 }}ok{{ end }}`, "ok"},
		{"truncate", `{{ truncate 3 .long }}`, "一二…"},
		{"str whole number", `{{ str .n }}`, "77"},
		{"replace", `{{ replace "a" "b" "aa" }}`, "bb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := tmpl.Parse("x", tt.given)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Execute(tp, data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseErrorNamesKey(t *testing.T) {
	if _, err := tmpl.Parse("reply.template", "{{ .x "); err == nil || err.Error()[:14] != "reply.template" {
		t.Fatalf("got %v", err)
	}
}

func TestJSONDataNumbersAsWritten(t *testing.T) {
	tp, _ := tmpl.Parse("x", `{{ .ts }} {{ if eq (int .code) 0 }}zero{{ end }} {{ .missing | default "d" }} {{ .n | default "d" }}`)
	got, err := tmpl.Execute(tp, tmpl.JSONData([]byte(`{"ts": 1764576000000, "code": 0, "n": 0}`)))
	if err != nil || got != "1764576000000 zero d d" {
		t.Fatalf("got %q, %v", got, err)
	}
	if tmpl.JSONData([]byte(`{} {}`)) != nil || tmpl.JSONData([]byte(`<xml/>`)) != nil {
		t.Fatal("not one JSON document must give nil")
	}
}
