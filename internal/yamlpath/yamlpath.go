// Package yamlpath finds the line of a key in a decoded YAML tree, so that a
// validation error found after decoding can still name the line.
package yamlpath

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Line returns the line of the value at path ("reply.template",
// "hooks[2].to.users") under n, or of the deepest key of path present; 0
// when n is nil or not even the first key is there.
func Line(n *yaml.Node, path string) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, step := range steps(path) {
		next := child(n, step)
		if next == nil {
			break
		}
		n, line = next, next.Line
	}
	return line
}

// Annotate appends " (line N)" to err when its message starts with a key
// path found under n.
func Annotate(n *yaml.Node, err error) error {
	if err == nil || n == nil {
		return err
	}
	key, _, ok := strings.Cut(err.Error(), ": ")
	key, _, _ = strings.Cut(key, ", ") // "title, description, url: ..." names the first
	if !ok || strings.Contains(key, " ") {
		return err
	}
	if l := Line(n, key); l > 0 {
		return fmt.Errorf("%w (line %d)", err, l)
	}
	return err
}

var index = regexp.MustCompile(`\[(\d+)\]`)

// steps splits "a.b[2].c" into "a", "b", "[2]", "c".
func steps(path string) []string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		name := index.ReplaceAllString(part, "")
		if name != "" {
			out = append(out, name)
		}
		for _, m := range index.FindAllString(part, -1) {
			out = append(out, m)
		}
	}
	return out
}

func child(n *yaml.Node, step string) *yaml.Node {
	if strings.HasPrefix(step, "[") {
		i, _ := strconv.Atoi(strings.Trim(step, "[]"))
		if n.Kind == yaml.SequenceNode && i < len(n.Content) {
			return n.Content[i]
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == step {
			v := n.Content[i+1]
			if v.Kind == yaml.ScalarNode || v.Kind == yaml.AliasNode {
				// The key's line: a scalar's value is on it anyway.
				return &yaml.Node{Kind: v.Kind, Value: v.Value, Line: n.Content[i].Line}
			}
			c := *v
			c.Line = n.Content[i].Line
			return &c
		}
	}
	return nil
}
