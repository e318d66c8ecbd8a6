package bus

import (
	"context"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrMsgID reports a publish without a de-duplication id: every wxhub message
// needs one, or a retried publish would be stored twice.
var ErrMsgID = errors.New("bus: empty message id")

// PublishJSON marshals v and publishes it to subject with the headers
// Nats-Msg-Id = msgID, Wxhub-Schema = schema and traceparent from ctx (a new
// trace when ctx has none). It returns after JetStream stored the message (or
// recognized it as a duplicate: PubAck.Duplicate). Safe for concurrent use.
func (b *Bus) PublishJSON(ctx context.Context, subject, msgID, schema string, v any) (*jetstream.PubAck, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bus: marshal %s: %w", schema, err)
	}
	h := nats.Header{}
	if schema != "" {
		h.Set(HeaderSchema, schema)
	}
	return b.Publish(ctx, subject, msgID, h, data)
}

// Publish stores data on subject with header h (may be nil) and Nats-Msg-Id =
// msgID, adding traceparent from ctx when h has none. Waits for the PubAck.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, h nats.Header, data []byte) (*jetstream.PubAck, error) {
	if msgID == "" {
		return nil, fmt.Errorf("%w: subject %s", ErrMsgID, subject)
	}
	if h == nil {
		h = nats.Header{}
	}
	h.Set(HeaderMsgID, msgID)
	if h.Get(HeaderTraceParent) == "" {
		tp := TraceParentFrom(ctx)
		if tp == "" {
			tp = NewTraceParent()
		}
		h.Set(HeaderTraceParent, tp)
	}
	ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: data})
	if err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return ack, nil
}
