package sender_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
)

// Answers to users (data.in_reply_to set) leave no status key behind, even
// after a retry; a pushed message keeps its record; an answer that fails
// permanently still gets "failed".
func TestSimAnswersKeepNoStatus(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 3, clock: clock})
	ctx := testCtx(t)

	// Reply ids as the connector SDK makes them ("<event>/<class><i>") need
	// the b64_ key form, so the key check below covers it.
	const answer, retried, failed = "ev-a/m0", "ev-b/m0", "ev-c/m0"
	h.publishReply(answer, "u0", time.Now())
	h.publish("push", "", "u1", "pushed")
	waitFor(t, 10*time.Second, "answer and push sent", func() bool { return h.sim.Stats().Sent == 2 })
	waitFor(t, 10*time.Second, "push status", func() bool { return h.status("push").Status == schemas.StatusSent })

	// A retry would have written "queued" for a pushed message.
	h.sim.FailNextOn("message/send", 1, -1)
	h.publishReply(retried, "u2", time.Now())
	for h.sim.Stats().Sent != 3 {
		clock.Advance(200 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("retried answer never sent")
		}
	}

	h.sim.FailNextOn("message/send", 1, 40003)
	h.publishReply(failed, "u0", time.Now())
	waitFor(t, 10*time.Second, "failed answer", func() bool { return h.status(failed).Status == schemas.StatusFailed })

	// A graceful stop writes every queued status: what is absent now was never written.
	h.stop()
	kv, err := h.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range keys.Keys() {
		got = append(got, k)
	}
	want := []string{sender.StatusKey(failed), "push"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("status keys %v, want %v (no record for the sent answers)", got, want)
	}
	for _, id := range []string{answer, retried} {
		if _, err := kv.Get(ctx, sender.StatusKey(id)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("answer %s: status get = %v, want not found", id, err)
		}
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
