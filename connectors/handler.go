// Package connectors is the connector SDK (v1): a connector is a Handler that
// gets one routed event and returns the replies to send. The Runner does
// everything around it: it consumes the connector's partitions of WXHUB_ROUTE,
// calls the handler (events of one user in order, different users in
// parallel), publishes the replies to WXHUB_OUT, waits for their acks, and only
// then acks the event. Failures are retried with backoff; past MaxDeliver, or at
// once for Permanent errors, the event goes to WXHUB_DLQ with the reason.
//
// See docs/connectors.md for the guide, the subjects and the JSON a connector in
// another language uses.
package connectors

import (
	"context"
	"errors"

	"github.com/wxhub/wxhub/schemas"
)

// Handler handles one routed event. It is called by the Runner from several
// goroutines at once (never for two events of the same user at once), so it
// must be safe for concurrent use.
//
// ctx lives until Handle returns; it is cancelled only when a shutdown's grace
// period ends, and carries the trace (bus.TraceParentFrom) and the delivery
// (DeliveryFrom). Return nil error and the replies (possibly none) when done:
// the runner publishes them and acks the event. Return Permanent(err) when
// retrying cannot help (bad input, unknown user): the event goes to the DLQ at
// once. Any other error is retried with backoff, up to MaxDeliver deliveries.
// The same event may be delivered again after a crash, so side effects on
// legacy systems should be idempotent (key them on ev.ID); replies are
// de-duplicated by the runner.
type Handler interface {
	Handle(ctx context.Context, ev *schemas.Event) ([]Reply, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev *schemas.Event) ([]Reply, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev *schemas.Event) ([]Reply, error) {
	return f(ctx, ev)
}

// Middleware wraps a Handler (logging, auth, metrics, ...).
type Middleware func(Handler) Handler

// Chain wraps h in mw; the first middleware is the outermost (it sees the event
// first and the result last).
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the runner terminates the event
// and copies it to the DLQ with err as the reason. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or any error it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Delivery describes the delivery of the event being handled.
type Delivery struct {
	Connector string
	Subject   string // wxhub.route.<connector>.<partition>
	Partition int
	Attempt   int    // 1 for the first delivery
	StreamSeq uint64 // sequence in WXHUB_ROUTE
}

type deliveryKey struct{}

// DeliveryFrom returns the delivery of the event a handler is handling.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}
