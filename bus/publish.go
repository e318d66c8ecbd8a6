package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	return b.publish(ctx, 0, subject, msgID, h, data)
}

// PublishWithin is Publish waiting at most timeout for the PubAck, whatever
// ctx says (ctx carries the trace only). For the gateway's hot path, which
// then needs no context with a deadline (a timer and a cancel) per callback.
func (b *Bus) PublishWithin(ctx context.Context, timeout time.Duration, subject, msgID string, h nats.Header, data []byte) (*jetstream.PubAck, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("bus: publish %s: timeout %s, want > 0", subject, timeout)
	}
	return b.publish(ctx, timeout, subject, msgID, h, data)
}

func (b *Bus) publish(ctx context.Context, timeout time.Duration, subject, msgID string, h nats.Header, data []byte) (*jetstream.PubAck, error) {
	if msgID == "" {
		return nil, fmt.Errorf("%w: subject %s", ErrMsgID, subject)
	}
	if err := b.StorageFault(); err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", subject, err) // refused at once, not after the timeout
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
	ack, err := b.publishSync(ctx, timeout, &nats.Msg{Subject: subject, Header: h, Data: data})
	if err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return ack, nil
}

// publishSync is jetstream's PublishMsg (request, retry on no responders,
// check the answer) with the answer decoded by goccy/go-json, the faster
// decoder on the gateway's hot path. timeout > 0 bounds
// the wait with the client's pooled timers instead of ctx. Errors are
// jetstream's own (ErrNoStreamResponse, ErrInvalidJSAck, *jetstream.APIError).
func (b *Bus) publishSync(ctx context.Context, timeout time.Duration, m *nats.Msg) (*jetstream.PubAck, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	} else if d, ok := ctx.Deadline(); ok {
		// Retrying "no responders" stops at publishTimeout even under a
		// longer ctx: a stream that long without a leader is not coming back
		// for this caller.
		deadline = time.Now().Add(publishTimeout)
		if d.Before(deadline) {
			deadline = d
		}
	} else {
		deadline = time.Now().Add(publishTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	request := func() (*nats.Msg, error) { return b.nc.RequestMsgWithContext(ctx, m) }
	if timeout > 0 {
		request = func() (*nats.Msg, error) {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, nats.ErrTimeout
			}
			return b.nc.RequestMsg(m, left)
		}
	}
	resp, err := request()
	// No responders: a stream leader moving (an election takes seconds on a
	// cluster) or a stream being declared. Retried until the deadline, not a
	// fixed count: a gateway with 3 s to answer WeChat keeps trying for 3 s.
	for wait := publishRetryWait; errors.Is(err, nats.ErrNoResponders); wait = min(2*wait, publishRetryMax) {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		t := time.NewTimer(min(wait, left))
		done := false
		select {
		case <-ctx.Done(): // out of time: report the no responders
			t.Stop()
			done = true
		case <-t.C:
		}
		if done {
			break
		}
		if time.Until(deadline) < publishRetryWait {
			break // too little left for an answer: report the no responders
		}
		resp, err = request()
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, jetstream.ErrNoStreamResponse
	}
	if err != nil {
		return nil, err
	}
	var ack struct {
		jetstream.PubAck
		Error *jetstream.APIError `json:"error,omitempty"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return nil, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return nil, ack.Error
	}
	if ack.Stream == "" {
		return nil, jetstream.ErrInvalidJSAck
	}
	return &ack.PubAck, nil
}

// Waits between publishes answered "no responders".
const (
	publishRetryWait = 50 * time.Millisecond
	publishRetryMax  = 500 * time.Millisecond
)

// publishTimeout bounds a publish whose ctx has no deadline (jetstream's
// default API timeout).
const publishTimeout = 5 * time.Second
