package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.json
var files embed.FS

// FS holds the JSON Schema files, for serving and for connectors in other languages.
func FS() embed.FS { return files }

// ErrInvalid is wrapped by every validation failure; the *FieldError names the field.
var ErrInvalid = errors.New("invalid message")

// FieldError says which field of a document broke which rule.
type FieldError struct {
	Field  string // dotted path, e.g. "text.content" or "news.articles.0.title"; "" for the document
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return ErrInvalid }

// printer renders the validator's messages in English.
var printer = message.NewPrinter(language.English)

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

func compileAll() {
	compiled = map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	entries, err := files.ReadDir(".")
	if err != nil {
		compileErr = err
		return
	}
	for _, e := range entries {
		raw, _ := files.ReadFile(e.Name())
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			compileErr = fmt.Errorf("schemas: %s: %w", e.Name(), err)
			return
		}
		if err := c.AddResource(e.Name(), doc); err != nil {
			compileErr = fmt.Errorf("schemas: %s: %w", e.Name(), err)
			return
		}
	}
	for _, e := range entries {
		s, err := c.Compile(e.Name())
		if err != nil {
			compileErr = fmt.Errorf("schemas: %s: %w", e.Name(), err)
			return
		}
		compiled[strings.TrimSuffix(e.Name(), path.Ext(e.Name()))] = s
	}
}

// Validate checks a JSON document against the named schema file (without .json,
// e.g. "push.v1"). A failure is a *FieldError naming the deepest field at fault.
func Validate(name string, doc []byte) error {
	compileOnce.Do(compileAll)
	if compileErr != nil {
		return compileErr
	}
	s, ok := compiled[name]
	if !ok {
		return fmt.Errorf("schemas: no schema %q", name)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return &FieldError{Reason: "body is not valid JSON: " + err.Error()}
	}
	err = s.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return fieldError(ve)
	}
	return err
}

// fieldError picks the deepest cause: the one closest to the field a user must fix.
func fieldError(ve *jsonschema.ValidationError) *FieldError {
	leaf := ve
	for len(leaf.Causes) > 0 {
		next := leaf.Causes[0]
		for _, c := range leaf.Causes[1:] {
			if len(c.InstanceLocation) > len(next.InstanceLocation) {
				next = c
			}
		}
		leaf = next
	}
	loc := append([]string(nil), leaf.InstanceLocation...)
	reason := leaf.ErrorKind.LocalizedString(printer)
	if r, ok := leaf.ErrorKind.(*kind.Required); ok && len(r.Missing) > 0 {
		loc = append(loc, r.Missing[0])
		reason = "is required"
	}
	return &FieldError{Field: strings.Join(loc, "."), Reason: reason}
}
