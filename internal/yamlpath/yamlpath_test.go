package yamlpath_test

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/internal/yamlpath"
)

func TestLine(t *testing.T) {
	var n yaml.Node
	src := "a: 1\nreply:\n  kind: text\n  template: x\nhooks:\n  - name: a\n  - name: b\n    to:\n      users: u\n"
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want int
	}{{"a", 1}, {"reply.template", 4}, {"hooks[1].to.users", 9}, {"hooks[1].name", 7}, {"missing", 0}, {"reply.missing", 2}}
	for _, tt := range tests {
		if got := yamlpath.Line(&n, tt.path); got != tt.want {
			t.Errorf("Line(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
	if got := yamlpath.Annotate(&n, errors.New("reply.template: bad")).Error(); got != "reply.template: bad (line 4)" {
		t.Errorf("Annotate: %q", got)
	}
}
