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

// RouteMsgID is the de-duplication id of an event routed to a connector, so a
// router that redelivers an event does not hand it to the connector twice.
func RouteMsgID(eventID, connector string) string { return eventID + "/" + connector }

// PublishRoute publishes ev to wxhub.route.<connector>.<partition of ev's user>
// with Nats-Msg-Id = RouteMsgID. partitions <= 0 means the bus config's; every
// router and connector process must use the same count.
func (b *Bus) PublishRoute(ctx context.Context, connector string, partitions int, ev *schemas.Event) (*jetstream.PubAck, error) {
	if ev.ID == "" {
		return nil, fmt.Errorf("%w: event to %s has no id", ErrMsgID, connector)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("bus: marshal event %s: %w", ev.ID, err)
	}
	if partitions <= 0 {
		partitions = b.cfg.Partitions
	}
	p := Partition(ev.Data.User, partitions)
	h := nats.Header{}
	h.Set(HeaderSchema, schemas.SchemaEvent)
	h.Set(HeaderConnector, connector)
	h.Set(HeaderPartition, strconv.Itoa(p))
	if TraceParentFrom(ctx) == "" && ev.TraceParent != "" {
		ctx = WithTraceParent(ctx, ev.TraceParent)
	}
	return b.Publish(ctx, RouteSubject(connector, p), RouteMsgID(ev.ID, connector), h, data)
}
