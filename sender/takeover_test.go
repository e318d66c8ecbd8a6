package sender_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// A standby takes over while the previous holder still has a member's first
// messages in hand, longer than AckWait + 1 s, and a quiet-hours message is
// parked in JetStream: the standby sends nothing of that member before the
// held messages are back, then all in order, and the parked one does not
// hold the takeover up (no safety-bound timeout).
func TestTakeoverWaitsForHeldMessagesNotParked(t *testing.T) {
	ctx := context.Background()
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 23, 0, 0, 0, shanghai))
	e := newSimEnv(t, clock, sim.Limits{}, 2, nil)
	cfg := e.cfg
	cfg.AckWait = 2 * time.Second
	consumer := cmp.Or(cfg.Consumer, sender.DefaultConsumer)

	// S0 parks u1's message (quiet until 07:00) in JetStream, then stops.
	kv, err := e.hub.KV(ctx, bus.BucketDND)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := dnd.ParseWindow("22:00-07:00")
	if err := sender.NewDNDStore(kv).Set(ctx, "u1", w, clock.Now()); err != nil {
		t.Fatal(err)
	}
	s0 := startProc(t, e.hub, e.api, clock, cfg, zaptest.NewLogger(t).Named("S0"))
	e.publish(t, "quiet", "u1", "q")
	h := &harness{t: t, bus: e.hub}
	waitFor(t, 20*time.Second, "the quiet message deferred", func() bool { return h.status("quiet").Status == schemas.StatusDeferred })
	s0.stop() // returns once its workers are done: the park is recorded

	// A: the previous holder, a process that took u0's first three messages
	// and keeps them (InProgress) well past AckWait + 1 s.
	a, err := bus.Dial(ctx, bus.Config{URL: e.hub.ClientURL(), DataDir: e.hub.Config().DataDir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	for i := range 3 {
		e.publish(t, fmt.Sprintf("id%d", i), "u0", fmt.Sprintf("m%d", i))
	}
	ac, err := a.JS().Consumer(ctx, bus.StreamOut, consumer)
	if err != nil {
		t.Fatal(err)
	}
	var held []jetstream.Msg
	deadline := time.Now().Add(20 * time.Second)
	for len(held) < 3 && time.Now().Before(deadline) {
		batch, err := ac.Fetch(3-len(held), jetstream.FetchPriorityGroup(sender.PriorityGroup), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			held = append(held, m)
		}
	}
	if len(held) != 3 {
		t.Fatalf("A fetched %d messages, want 3", len(held))
	}
	keep, stopKeep := context.WithCancel(ctx)
	var kept sync.WaitGroup
	kept.Go(func() {
		tick := time.NewTicker(cfg.AckWait / 4)
		defer tick.Stop()
		for {
			select {
			case <-keep.Done():
				return
			case <-tick.C:
				for _, m := range held {
					_ = m.InProgress()
				}
			}
		}
	})
	defer stopKeep()

	// B is pinned once A stops pulling (PinnedTTL) and gets u0's later messages.
	reg := prometheus.NewRegistry()
	startProc(t, e.hub, e.api, clock, cfg, zaptest.NewLogger(t).Named("B"), sender.WithRegisterer(reg))
	for i := 3; i < 5; i++ {
		e.publish(t, fmt.Sprintf("id%d", i), "u0", fmt.Sprintf("m%d", i))
	}
	si, err := e.hub.JS().Stream(ctx, bus.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	last := si.CachedInfo().State.LastSeq
	waitFor(t, 20*time.Second, "B holding the later messages", func() bool {
		info, err := ac.Info(ctx)
		return err == nil && info.Delivered.Stream >= last
	})
	time.Sleep(cfg.AckWait + 2*time.Second) // A keeps its messages past the old timed bound
	if got := e.contents("u0"); len(got) != 0 {
		t.Fatalf("B sent %q while A still held m0..m2", got)
	}
	stopKeep()
	kept.Wait()
	handed := time.Now()
	for _, m := range held { // in stream order, as a stopping sender hands back
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "all five to u0", func() bool { return len(e.contents("u0")) >= 5 })
	t.Logf("sent %s after A handed back", time.Since(handed).Round(time.Millisecond))
	if got, want := strings.Join(e.contents("u0"), ","), "m0,m1,m2,m3,m4"; got != want {
		t.Fatalf("u0 received %s, want %s", got, want)
	}
	if got := e.contents("u1"); len(got) != 0 {
		t.Fatalf("u1 received %q in quiet hours", got)
	}
	if n := metric(t, reg, "wxhub_sender_takeover_barrier_timeouts_total", nil); n != 0 {
		t.Fatalf("the barrier ran out %v times: the parked message held it up", n)
	}
}

// The active sender loses its pin while alive (here the operator unpins it;
// also a pull that lapsed under load): it hands its queued messages back at
// once, so the new holder sends them, in order with the later ones, without
// waiting for the old holder's 30 s backoff.
func TestLostPinHandsBack(t *testing.T) {
	var failed atomic.Bool
	front := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/message/send") {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if bytes.Contains(body, []byte(`"m0"`)) && failed.CompareAndSwap(false, true) {
					_, _ = io.WriteString(w, `{"errcode":-1,"errmsg":"system is busy"}`)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newSimEnv(t, sender.SystemClock{}, sim.Limits{}, 1, front)
	cfg := e.cfg
	cfg.Retry = sender.Retry{Base: 30 * time.Second, Max: time.Minute, MaxAttempts: 5}
	consumer := cmp.Or(cfg.Consumer, sender.DefaultConsumer)
	startProc(t, e.hub, e.api, sender.SystemClock{}, cfg, zaptest.NewLogger(t).Named("A"))
	for i := range 5 {
		e.publish(t, fmt.Sprintf("id%d", i), "u0", fmt.Sprintf("m%d", i))
	}
	waitFor(t, 20*time.Second, "A's first attempt refused", failed.Load)
	startProc(t, e.hub, e.api, sender.SystemClock{}, cfg, zaptest.NewLogger(t).Named("B"))
	ctx := context.Background()
	c, err := e.hub.JS().Consumer(ctx, bus.StreamOut, consumer)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both pulling", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumWaiting >= 2
	})
	st, err := e.hub.JS().Stream(ctx, bus.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UnpinConsumer(ctx, consumer, sender.PriorityGroup); err != nil {
		t.Fatal(err)
	}
	unpinned := time.Now()
	e.publish(t, "id5", "u0", "m5") // the next delivery pins a process
	waitFor(t, 20*time.Second, "all six", func() bool { return len(e.contents("u0")) >= 6 })
	if took := time.Since(unpinned); took > 10*time.Second {
		t.Fatalf("delivered %s after the unpin, want within 10 s", took)
	}
	if got, want := strings.Join(e.contents("u0"), ","), "m0,m1,m2,m3,m4,m5"; got != want {
		t.Fatalf("u0 received %s, want %s", got, want)
	}
}
