package bus

import (
	"context"
	"fmt"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/schemas"
)

// RouteMsg builds the message PublishRoute sends for ev to connector: subject
// wxhub.route.<connector>.<partition>, Nats-Msg-Id = RouteMsgID, the schema,
// connector and partition headers and a traceparent (ctx's, else the event's,
// else a new trace). data is ev's JSON, marshalled once by the caller however
// many connectors the event goes to; nil marshals ev here.
func (b *Bus) RouteMsg(ctx context.Context, connector string, partitions int, ev *schemas.Event, data []byte) (*nats.Msg, error) {
	if ev.ID == "" {
		return nil, fmt.Errorf("%w: event to %s has no id", ErrMsgID, connector)
	}
	if data == nil {
		var err error
		if data, err = json.Marshal(ev); err != nil {
			return nil, fmt.Errorf("bus: marshal event %s: %w", ev.ID, err)
		}
	}
	if partitions <= 0 {
		partitions = b.cfg.Partitions
	}
	p := Partition(ev.Data.User, partitions)
	tp := TraceParentFrom(ctx)
	if tp == "" {
		tp = ev.TraceParent
	}
	if tp == "" {
		tp = NewTraceParent()
	}
	// Canonical keys set directly: nats.Header.Set would canonicalize each
	// again, and the literal map is one allocation instead of several.
	h := nats.Header{
		HeaderSchema:      {schemas.SchemaEvent},
		HeaderConnector:   {connector},
		HeaderPartition:   {strconv.Itoa(p)},
		HeaderMsgID:       {RouteMsgID(ev.ID, connector)},
		HeaderTraceParent: {tp},
	}
	return &nats.Msg{Subject: RouteSubject(connector, p), Header: h, Data: data}, nil
}

// PublishAsync sends m without waiting for JetStream's ack: the returned
// future resolves when the stream stored it (or knew it as a duplicate).
// Messages published on one Bus reach the stream in the order of the calls, so
// a caller that waits for a batch of futures keeps its order. m must carry
// Nats-Msg-Id (ErrMsgID otherwise): republishing after an error is then safe.
//
// The client's own retry on "no responders" is off: it re-sends each message
// on its own timer, which can store a later message ahead of an earlier one.
// A caller retries the batch in order instead.
func (b *Bus) PublishAsync(m *nats.Msg) (jetstream.PubAckFuture, error) {
	if m.Header.Get(HeaderMsgID) == "" {
		return nil, fmt.Errorf("%w: subject %s", ErrMsgID, m.Subject)
	}
	f, err := b.js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
	if err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", m.Subject, err)
	}
	return f, nil
}

// WaitAck waits for f until ctx is done. A ctx without deadline waits as
// long as the future does (the connection fails pending futures when it drops).
func WaitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, fmt.Errorf("bus: publish %s: %w", f.Msg().Subject, err)
	case <-ctx.Done():
		return nil, fmt.Errorf("bus: publish %s: waiting for the ack: %w", f.Msg().Subject, ctx.Err())
	}
}
