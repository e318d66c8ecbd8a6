// Package tmpl is the template language of the YAML-configured integrations
// (the http and webhook connectors, the inbound hooks): Go's text/template
// with a small set of functions. text/template is in the standard library
// (no dependency to keep up), cannot do I/O, and is the syntax operators
// already write for Helm charts and Alertmanager notifications.
package tmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
)

// Funcs are the functions every template has besides text/template's own
// (and, or, not, eq, ne, lt, le, gt, ge, len, index, printf, urlquery, html, js):
//
//	json v          v as JSON ("a\"b" → "\"a\\\"b\""); for request bodies
//	default d v     v, or d when v is missing, nil, "", 0 or false
//	trim s          s without leading and trailing white space
//	upper, lower s  case
//	join sep list   the list's items joined by sep
//	split sep s     s cut at each sep
//	replace old new s
//	truncate n s    s cut to n characters, "…" appended when cut
//	contains sub s, hasPrefix p s, hasSuffix p s
//	int v           v as an integer (JSON numbers are float64: eq (int .json.code) 0)
//	str v           v as a string
var Funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"default":   dflt,
	"trim":      strings.TrimSpace,
	"upper":     strings.ToUpper,
	"lower":     strings.ToLower,
	"join":      join,
	"split":     func(sep, s string) []string { return strings.Split(s, sep) },
	"replace":   func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"truncate":  truncate,
	"contains":  func(sub, s string) bool { return strings.Contains(s, sub) },
	"hasPrefix": func(p, s string) bool { return strings.HasPrefix(s, p) },
	"hasSuffix": func(p, s string) bool { return strings.HasSuffix(s, p) },
	"int":       toInt,
	"str":       Str,
}

// Parse parses text as a template named name (the config key, so that errors
// name it).
func Parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(Funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Execute renders t with data.
func Execute(t *template.Template, data any) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Truthy reports whether a rendered condition holds: "true", "yes" or "1"
// (after trimming white space), as a condition template renders it.
func Truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "1":
		return true
	}
	return false
}

func dflt(d any, v ...any) any {
	if len(v) == 0 || empty(v[0]) {
		return d
	}
	return v[0]
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case json.Number:
		f, err := x.Float64()
		return err == nil && f == 0
	case int:
		return x == 0
	case int64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func join(sep string, list any) string {
	switch l := list.(type) {
	case []string:
		return strings.Join(l, sep)
	case []any:
		s := make([]string, len(l))
		for i, v := range l {
			s[i] = Str(v)
		}
		return strings.Join(s, sep)
	case nil:
		return ""
	}
	return Str(list)
}

func truncate(n int, s string) string {
	r := []rune(s)
	if n < 0 || len(r) <= n {
		return s
	}
	if n == 0 {
		return ""
	}
	return string(r[:n-1]) + "…"
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("int: %v is not a whole number", x)
		}
		return int64(x), nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case json.Number:
		return x.Int64()
	case string:
		return strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("int: cannot convert %T", v)
}

// Str formats v as text: strings as they are, whole numbers without an
// exponent, nil as "", anything else as JSON.
func Str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e18 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// JSONData decodes a JSON document into maps, lists, strings, numbers and
// bools for a template, or returns nil when b is not JSON. Numbers are
// json.Number, so they print as written (1764576000000, not 1.764576e+12);
// compare them with int: eq (int .json.code) 0.
func JSONData(b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.More() {
		return nil
	}
	return v
}

// ToData turns a Go value (a struct with json tags) into the maps a template
// sees, keyed by the JSON names.
func ToData(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	m, _ := JSONData(b).(map[string]any)
	return m
}
