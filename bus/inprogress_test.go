package bus_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// TestKeepInProgress: a message kept in progress is not redelivered past its
// AckWait; once stopped, the server redelivers it after AckWait as usual.
func TestKeepInProgress(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject(schemas.ChannelWeCom, "helpdesk", "text")
	if _, err := b.Publish(ctx, subj, "kip-1", nil, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	const ackWait = time.Second
	c, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamIn, jetstream.ConsumerConfig{
		Durable: "kip", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, FilterSubject: subj})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg := <-batch.Messages()
	if msg == nil {
		t.Fatal("no message")
	}
	stop := bus.KeepInProgress(ackWait/4, msg)
	// Three AckWaits under heartbeat: never offered again.
	again, err := c.Fetch(1, jetstream.FetchMaxWait(3*ackWait))
	if err != nil {
		t.Fatal(err)
	}
	if m := <-again.Messages(); m != nil {
		t.Fatalf("redelivered while in progress (delivery %v)", m.Headers())
	}
	stop()
	later, err := c.Fetch(1, jetstream.FetchMaxWait(4*ackWait))
	if err != nil {
		t.Fatal(err)
	}
	if m := <-later.Messages(); m == nil {
		t.Fatal("not redelivered after the heartbeat stopped")
	}
}
