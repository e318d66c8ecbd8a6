package connectors_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// BenchmarkRunnerEcho sends b.N events from 1,000 users through an embedded
// bus to an echo runner and reports the throughput and the latency from the
// event's publish to its reply being stored on wxhub.out.<app>.
// "flat" publishes as fast as it can (throughput); "1000/s" paces the events
// (latency at the target rate). For example:
//
//	go test ./connectors -run '^$' -bench RunnerEcho -benchtime 3000x
func BenchmarkRunnerEcho(b *testing.B) {
	for _, tc := range []struct {
		name       string
		partitions int
		rate       float64 // events/s; 0: as fast as possible
	}{
		{name: "flat/partitions=16", partitions: 16},
		{name: "1000per_s/partitions=16", partitions: 16, rate: 1000},
		{name: "flat/partitions=64", partitions: 64},
		{name: "1000per_s/partitions=64", partitions: 64, rate: 1000},
	} {
		b.Run(tc.name, func(b *testing.B) { benchEcho(b, tc.partitions, tc.rate) })
	}
}

func benchEcho(b *testing.B, partitions int, rate float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bs, err := bus.Open(ctx, bus.Config{DataDir: b.TempDir(), Port: -1, Partitions: partitions}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bs.Close() }()

	const users = 1000
	events := make([]*schemas.Event, b.N)
	for i := range events {
		events[i] = &schemas.Event{
			SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("bench-%d", i), Source: "wecom/helpdesk", Type: "wxhub.in.text",
			Time: time.Now().UTC(),
			Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: fmt.Sprintf("u%04d", i%users), MsgType: "text", Content: "echo hi"},
		}
	}
	var (
		mu   sync.Mutex
		sent = make(map[string]time.Time, b.N)
		lat  = make([]time.Duration, 0, b.N)
		done = make(chan struct{})
	)
	// Core subscribers get a stream's message when it is stored: this is
	// "reply stored", the moment the runner may ack the event.
	sub, err := bs.Conn().Subscribe(bus.OutSubject("helpdesk"), func(m *nats.Msg) {
		now := time.Now()
		id, _, _ := strings.Cut(m.Header.Get(bus.HeaderMsgID), "/")
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[id]; ok {
			delete(sent, id)
			lat = append(lat, now.Sub(t))
			if len(lat) == b.N {
				close(done)
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	echo := connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		return []connectors.Reply{connectors.Text(ev.Data.User, ev.Data.Content)}, nil
	})
	rctx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() {
		runErr <- connectors.Run(rctx, bs, connectors.Options{Name: "echo", Concurrency: partitions, Logger: zap.NewNop()}, echo)
	}()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			b.Error(err)
		}
	}()

	b.ResetTimer()
	start := time.Now()
	for i, ev := range events {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		m, err := bs.RouteMsg(ctx, "echo", partitions, ev, nil)
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		sent[ev.ID] = time.Now()
		mu.Unlock()
		if _, err := bs.PublishAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("replies: %d of %d", len(lat), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
