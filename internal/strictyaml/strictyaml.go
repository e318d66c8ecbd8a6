// Package strictyaml decodes YAML into Go structs refusing keys the struct
// does not have: a misspelt key silently ignored is a setting that silently
// does not apply. Errors name the key path and the line.
package strictyaml

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decode checks n against v's type, then decodes it into v. path prefixes the
// keys in errors ("connectors.erp"); a nil node leaves v as it is.
func Decode(n *yaml.Node, v any, path string) error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if err := CheckKnown(n, reflect.TypeOf(v), path); err != nil {
		return err
	}
	if err := n.Decode(v); err != nil {
		msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", ";")
		if path != "" {
			return fmt.Errorf("%s: %s", path, msg)
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// CheckKnown reports the first mapping key of n that t (a struct, or a
// pointer, slice or map of one) has no field for: "path.key: unknown key (line N)".
// The keys of inlined structs count as the outer struct's.
func CheckKnown(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(yaml.Node{}) {
		return nil // decoded later by its owner
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Duration(0)):
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			key := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", key, k.Line)
			}
			if err := CheckKnown(n.Content[i+1], ft, key); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := CheckKnown(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, c := range n.Content {
			if err := CheckKnown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectFields maps t's YAML keys to their types, inlined structs included.
func collectFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if strings.Contains(f.Tag.Get("yaml"), ",inline") && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, fields)
			continue
		}
		if tag != "" && tag != "-" {
			fields[tag] = f.Type
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
