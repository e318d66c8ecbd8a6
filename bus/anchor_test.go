package bus_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
)

// drainRoute routes n events to erp one at a time and acks each before the
// next, as a connector that keeps up does: the stream empties n times.
func drainRoute(t *testing.T, b *bus.Bus, n int) {
	t.Helper()
	ctx := testCtx(t)
	cons, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamRoute, jetstream.ConsumerConfig{
		Durable: "erp_0", FilterSubject: bus.RouteSubject("erp", 0), AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := b.Publish(ctx, bus.RouteSubject("erp", 0), "ev"+strconv.Itoa(i), nil, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if m.Subject() == bus.SubjectRouteAnchor {
				t.Fatalf("the connector was handed the anchor")
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
	}
}

// highestBlock is the index of WXHUB_ROUTE's newest block file: the store
// numbers them 1.blk, 2.blk... as it creates them.
func highestBlock(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", bus.StreamRoute, "msgs", "*.blk"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no block files of %s under %s (%v): has the store's layout changed?", bus.StreamRoute, dir, err)
	}
	high := 0
	for _, f := range files {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".blk"))
		if err == nil && n > high {
			high = n
		}
	}
	return high
}

// The test that the anchor does its job: without it, every drain of the work
// queue makes the store start a new block file; with it, the same block serves.
func TestRouteAnchorKeepsTheWriteBlock(t *testing.T) {
	const events = 50
	plainDir, anchoredDir := t.TempDir(), t.TempDir()

	plain := openBus(t, plainDir)
	defer plain.Close()
	drainRoute(t, plain, events)
	if n := highestBlock(t, plainDir); n < events {
		t.Fatalf("without an anchor: newest block %d after %d drains; expected one per drain (the reason for the anchor)", n, events)
	}

	anchored := openBus(t, anchoredDir)
	defer anchored.Close()
	if err := anchored.AnchorRoute(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	drainRoute(t, anchored, events)
	if n := highestBlock(t, anchoredDir); n > 2 {
		t.Fatalf("with an anchor: newest block %d after %d drains, want the same block", n, events)
	}
	if n, err := anchored.RouteBacklog(testCtx(t)); err != nil || n != 0 {
		t.Fatalf("RouteBacklog = %d, %v; want 0 (the anchor is not work)", n, err)
	}
}

func TestKeepRouteAnchorKeepsOneAndPurgesLeftovers(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	// Anchors left by a process that stopped, and one routed event.
	for range 3 {
		if _, err := b.JS().Publish(ctx, bus.SubjectRouteAnchor, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, bus.RouteSubject("crm", 2), "e1", nil, []byte("{}")); err != nil {
		t.Fatal(err)
	}

	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.KeepRouteAnchor(loopCtx, 10*time.Millisecond) }()

	st, err := b.JS().Stream(ctx, bus.StreamRoute)
	if err != nil {
		t.Fatal(err)
	}
	var first uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.SubjectRouteAnchor))
		if err != nil {
			t.Fatal(err)
		}
		last, err := st.GetLastMsgForSubject(ctx, bus.SubjectRouteAnchor)
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			first = last.Sequence
		}
		// Renewed (a later sequence) and alone: the loop writes and purges.
		if info.State.Subjects[bus.SubjectRouteAnchor] == 1 && last.Sequence > first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anchors: %d, last seq %d (first seen %d); want one, renewed", info.State.Subjects[bus.SubjectRouteAnchor], last.Sequence, first)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, err := b.RouteBacklog(ctx); err != nil || n != 1 {
		t.Fatalf("RouteBacklog = %d, %v; want 1 (the routed event)", n, err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, bus.RouteSubject("crm", 2)); err != nil {
		t.Fatalf("purging anchors touched a routed event: %v", err)
	}
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("KeepRouteAnchor did not return after its context ended")
	}
}

func TestKeepRouteAnchorSurvivesAMissingStream(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	if err := b.JS().DeleteStream(ctx, bus.StreamRoute); err != nil {
		t.Fatal(err)
	}
	if err := b.AnchorRoute(ctx); err == nil {
		t.Fatal("AnchorRoute without WXHUB_ROUTE: no error")
	}
	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.KeepRouteAnchor(loopCtx, 10*time.Millisecond) }()
	// The stream comes back (another process declares it): the loop anchors it.
	if err := b.Declare(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := b.JS().Stream(ctx, bus.StreamRoute)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := st.GetLastMsgForSubject(ctx, bus.SubjectRouteAnchor); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no anchor after the stream came back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
}

// While nothing is routed, the anchor is renewed five times less often: an
// idle hub writes one a second, not five.
func TestKeepRouteAnchorSlowsDownWhenIdle(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	st, err := b.JS().Stream(ctx, bus.StreamRoute)
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := func() uint64 {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	const every = 20 * time.Millisecond
	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.KeepRouteAnchor(loopCtx, every) }()
	deadline := time.Now().Add(10 * time.Second)
	for lastSeq() < 2 { // the first anchor and its first renewal
		if time.Now().After(deadline) {
			t.Fatal("no anchor renewed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	from, start := lastSeq(), time.Now()
	time.Sleep(40 * every)
	renewals, took := lastSeq()-from, time.Since(start)
	stop()
	<-done
	// At `every` it would be about took/every (40); idle it is a fifth of that.
	// Only an upper bound: a slow machine renews less, never more.
	if limit := uint64(took/every)/5 + 3; renewals > limit {
		t.Fatalf("%d anchors in %s idle with every=%s; want at most %d", renewals, took, every, limit)
	}
}
