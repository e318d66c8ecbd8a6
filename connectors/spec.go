package connectors

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
)

// Spec is what a connector declares about itself: its name in routing rules,
// the schema ids it consumes and emits, and how many events it handles at once.
type Spec struct {
	Name string
	// Consumes are the event schema ids (Wxhub-Schema header) the connector
	// understands. Default [schemas.SchemaEvent]. An event with another schema
	// goes to the DLQ at once rather than being misread.
	Consumes []string
	// Emits are the schema ids of what it publishes. Default
	// [schemas.SchemaOutbound]; a connector that only consumes declares none
	// with an empty non-nil slice, and the runner then refuses its replies.
	Emits []string
	// Concurrency: handler calls at once in one process (Options.Concurrency).
	Concurrency int
}

// Specifier is a handler that declares its Spec. NewRunner fills the Options
// fields that are unset (Name, Concurrency, Consumes, Emits) from it.
type Specifier interface {
	Spec() Spec
}

// Spec returns the declaration the runner works with (defaults applied).
func (r *Runner) Spec() Spec {
	return Spec{Name: r.opts.Name, Consumes: slices.Clone(r.opts.Consumes), Emits: slices.Clone(r.opts.Emits), Concurrency: r.opts.Concurrency}
}

func (o Options) withSpec(h Handler) Options {
	s, ok := h.(Specifier)
	if !ok {
		return o
	}
	spec := s.Spec()
	if o.Name == "" {
		o.Name = spec.Name
	}
	if o.Concurrency == 0 {
		o.Concurrency = spec.Concurrency
	}
	if o.Consumes == nil {
		o.Consumes = spec.Consumes
	}
	if o.Emits == nil {
		o.Emits = spec.Emits
	}
	return o
}

// consumes checks an event's schema header; an event without one (published
// by an older router or by hand) is taken as wxhub.event/v1.
func (r *Runner) consumes(schema string) error {
	if schema == "" {
		schema = schemas.SchemaEvent
	}
	if !slices.Contains(r.opts.Consumes, schema) {
		return fmt.Errorf("connector %s does not consume schema %q (consumes %v)", r.opts.Name, schema, r.opts.Consumes)
	}
	return nil
}

type loggerKey struct{}

// Logger returns the logger of the event being handled: the runner's logger
// with the connector, event id, attempt, partition and trace id as fields. It
// returns a no-op logger outside a runner (e.g. a handler called in a unit
// test). Never log message bodies at info: they hold what users wrote.
func Logger(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*zap.Logger); ok {
		return l
	}
	return zap.NewNop()
}

// WithLogger returns ctx carrying log for Logger; for tests of handlers and
// for middleware that adds fields.
func WithLogger(ctx context.Context, log *zap.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}
