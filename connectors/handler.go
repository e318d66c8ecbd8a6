// Package connectors is the connector SDK (v2): a connector is a Handler that
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

// answerError is an error the user is told about; the event is then acked.
type answerError struct {
	err     error
	replies []Reply
	text    string // Tell's message, sent as Text to the event's user
}

func (e *answerError) Error() string { return "answered user: " + e.err.Error() }
func (e *answerError) Unwrap() error { return e.err }

// errAnswered stands for the cause when AnswerUser or Tell get a nil error.
var errAnswered = errors.New("handler answered the user")

// AnswerUser is the third class of error, besides retryable and Permanent: the
// request cannot succeed, but the user should hear why rather than wait. The
// runner publishes replies (as it would a nil error's, under their own message
// ids <event id>/answer/<n>), acks the event and logs err at warn; nothing goes
// to the DLQ and nothing is retried. Use it for an unknown order number or a
// refused operation; use Permanent for what an operator must look at.
func AnswerUser(err error, replies ...Reply) error {
	if err == nil {
		err = errAnswered
	}
	return &answerError{err: err, replies: replies}
}

// Tell is AnswerUser with one text reply to the event's user through the
// event's app (a polite sentence, not err's text: errors may hold internals).
func Tell(err error, message string) error {
	if err == nil {
		err = errAnswered
	}
	return &answerError{err: err, text: message}
}

// IsAnswerUser reports whether err (or any error it wraps) came from AnswerUser or Tell.
func IsAnswerUser(err error) bool {
	var a *answerError
	return errors.As(err, &a)
}

// retryError carries notices published before a retry.
type retryError struct {
	err     error
	replies []Reply
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Retry is a retryable error (as any plain error) that first publishes
// notices, e.g. Text(user, "系统繁忙，稍后回复"). Notices are published under
// the ids <event id>/notice/<n>, so returning the same notices on every
// attempt still sends each once (within WXHUB_OUT's duplicate window, 2 min);
// return them only when DeliveryFrom(ctx).First() to be sure. They are also
// published when this attempt is the last one and the event goes to the DLQ.
func Retry(err error, notices ...Reply) error {
	if err == nil {
		return nil
	}
	return &retryError{err: err, replies: notices}
}

// Delivery describes the delivery of the event being handled.
type Delivery struct {
	Connector string
	Subject   string // wxhub.route.<connector>.<partition>
	Partition int
	Attempt   int    // 1 for the first delivery
	StreamSeq uint64 // sequence in WXHUB_ROUTE
	// MaxDeliver is the runner's Options.MaxDeliver: at this attempt a
	// retryable error dead-letters the event.
	MaxDeliver int
}

type deliveryKey struct{}

// DeliveryFrom returns the delivery of the event a handler is handling.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// Attempt-related helpers on Delivery.

// First reports whether this is the event's first delivery: the moment to
// tell the user once that an answer will be late (see Retry).
func (d Delivery) First() bool { return d.Attempt <= 1 }

// Last reports whether a retryable error now sends the event to the DLQ.
func (d Delivery) Last() bool { return d.MaxDeliver > 0 && d.Attempt >= d.MaxDeliver }
