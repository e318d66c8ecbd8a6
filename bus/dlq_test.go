package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// fetchOne reads the next message of a durable consumer on WXHUB_IN.
func fetchOne(t *testing.T, ctx context.Context, b *bus.Bus, durable string) jetstream.Msg {
	t.Helper()
	c, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamIn, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return m
}

func TestDeadLetterListReplayDrop(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject("wecom", "helpdesk", "text")
	if _, err := b.PublishJSON(ctx, subj, "ev-1", schemas.SchemaEvent, schemas.Event{ID: "ev-1"}); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, ctx, b, "r")
	// Dead-lettering the same delivery twice stores one entry.
	for range 2 {
		if err := b.DeadLetter(ctx, "router", m, "boom", 5); err != nil {
			t.Fatal(err)
		}
	}
	_ = m.Term()
	list, err := b.ListDLQ(ctx, bus.DLQFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListDLQ: %d entries, %v; want 1", len(list), err)
	}
	e := list[0]
	d := e.Letter.Data
	if d.Stage != "router" || d.Reason != "boom" || d.Attempts != 5 || d.Subject != subj || d.Headers[bus.HeaderMsgID] != "ev-1" {
		t.Fatalf("letter: %+v", d)
	}
	if e.Subject != "wxhub.dlq.router" || e.Letter.Type != "wxhub.dlq.router" {
		t.Fatalf("subject %q type %q", e.Subject, e.Letter.Type)
	}
	if other, _ := b.ListDLQ(ctx, bus.DLQFilter{Stage: "sender"}); len(other) != 0 {
		t.Fatalf("stage filter: %d entries", len(other))
	}

	if err := b.ReplayDLQ(ctx, e.Seq); err != nil {
		t.Fatalf("ReplayDLQ: %v", err)
	}
	if _, err := b.GetDLQ(ctx, e.Seq); !errors.Is(err, bus.ErrDLQNotFound) {
		t.Fatalf("after replay GetDLQ: %v, want ErrDLQNotFound", err)
	}
	m2 := fetchOne(t, ctx, b, "r")
	var ev schemas.Event
	if err := json.Unmarshal(m2.Data(), &ev); err != nil || ev.ID != "ev-1" || m2.Subject() != subj {
		t.Fatalf("replayed: %s %s %v", m2.Subject(), m2.Data(), err)
	}
	if m2.Headers().Get(bus.HeaderReplayOf) == "" {
		t.Fatal("replay header missing")
	}
	if err := b.ReplayDLQ(ctx, e.Seq); !errors.Is(err, bus.ErrDLQNotFound) {
		t.Fatalf("second replay: %v, want ErrDLQNotFound", err)
	}
	if err := b.DropDLQ(ctx, e.Seq); err != nil {
		t.Fatalf("drop of a gone entry: %v", err)
	}
}

func TestDeadLetterKeepsNonJSONPoison(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject("wecom", "helpdesk", "text")
	poison := []byte("\xff<not json>")
	if _, err := b.Publish(ctx, subj, "p1", nil, poison); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, ctx, b, "r")
	if err := b.DeadLetter(ctx, "router", m, "invalid JSON", 1); err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
	list, _ := b.ListDLQ(ctx, bus.DLQFilter{Stage: "router"})
	if len(list) != 1 || list[0].Letter.Data.Encoding != "base64" {
		t.Fatalf("list: %+v", list)
	}
	got, err := bus.OriginalBytes(list[0].Letter.Data)
	if err != nil || string(got) != string(poison) {
		t.Fatalf("original %q, %v", got, err)
	}
	if err := b.DropDLQ(ctx, list[0].Seq); err != nil {
		t.Fatal(err)
	}
	if list, _ := b.ListDLQ(ctx, bus.DLQFilter{}); len(list) != 0 {
		t.Fatalf("after drop: %d entries", len(list))
	}
}

func TestListDLQPaging(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	for i := range 5 {
		if err := b.PublishDeadLetter(ctx, "dl-"+string(rune('a'+i)), schemas.DeadLetterData{
			Stage: "sender", Reason: "x", Subject: bus.OutSubject("helpdesk"), Original: json.RawMessage(`{}`),
		}); err != nil {
			t.Fatal(err)
		}
	}
	page1, _ := b.ListDLQ(ctx, bus.DLQFilter{Limit: 3})
	page2, _ := b.ListDLQ(ctx, bus.DLQFilter{Limit: 3, After: page1[len(page1)-1].Seq})
	if len(page1) != 3 || len(page2) != 2 || page2[0].Seq <= page1[2].Seq {
		t.Fatalf("pages %d %d", len(page1), len(page2))
	}
}
