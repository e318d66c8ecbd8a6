package router_test

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/schemas"
)

// A consumer the server lost (restart without its state, an operator's
// delete) is declared again by the running router: routing resumes by itself,
// after the last event routed rather than from the stream's first.
func TestConsumerDeletedWhileRunningIsDeclaredAgain(t *testing.T) {
	b := newBus(t)
	var mu sync.Mutex
	var routed []string
	r, err := router.New(loadRules(t, rulesYAML), b, zaptest.NewLogger(t), router.WithOptions(router.Options{PollWait: 100 * time.Millisecond, OnRouted: func(ev *schemas.Event, _ []string) { mu.Lock(); routed = append(routed, ev.Data.Content); mu.Unlock() }}))
	if err != nil {
		t.Fatal(err)
	}
	got := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), routed...) }
	startRouter(t, r)
	inbound(t, b, "zhangsan", "订单 1")
	eventually(t, "first routed", func() bool { return len(got()) == 1 })
	if err := b.JS().DeleteConsumer(testCtx(t), "WXHUB_IN", "wxhub_router"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a few polls against the missing consumer
	inbound(t, b, "zhangsan", "订单 2")
	eventually(t, "routed after the consumer's loss", func() bool { return len(got()) >= 2 })
	time.Sleep(300 * time.Millisecond)
	if g := got(); len(g) != 2 || g[1] != "订单 2" {
		t.Fatalf("routed %q, want 订单 1 then 订单 2 once each", g)
	}
}
