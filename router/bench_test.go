package router_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/schemas"
)

// BenchmarkRouter routes b.N events already waiting in WXHUB_IN (embedded
// server, file storage) to one connector, over 100 users: the router's
// throughput from pull to ack. Run with -benchtime=5000x or so.
func BenchmarkRouter(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bs, err := bus.Open(ctx, bus.Config{DataDir: b.TempDir(), Port: -1, Partitions: 16}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	subject := bus.InSubject("wecom", "helpdesk", "text")
	for i := range b.N {
		e := &schemas.Event{SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("bench-%d", i), Source: "wecom/helpdesk",
			Type: "wxhub.in.text", Time: time.Now().UTC(), DataContentType: "application/json",
			Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: fmt.Sprintf("u%d", i%100), MsgType: "text", Content: "echo 订单 1001"}}
		if _, err := bs.PublishJSON(ctx, subject, e.ID, schemas.SchemaEvent, e); err != nil {
			b.Fatal(err)
		}
	}
	var routed atomic.Int64
	done := make(chan struct{})
	r, err := router.New(router.Config{Default: "echo"}, bs, nil, router.WithOptions(router.Options{PollWait: 100 * time.Millisecond,
		OnRouted: func(*schemas.Event, []string) {
			if routed.Add(1) == int64(b.N) {
				close(done)
			}
		}}))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	rctx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	go func() { exited <- r.Run(rctx) }()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("routed %d of %d", routed.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	stop()
	if err := <-exited; err != nil {
		b.Fatal(err)
	}
}
