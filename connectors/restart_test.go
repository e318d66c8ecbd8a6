package connectors_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/echo"
	"github.com/wxhub/wxhub/internal/natstest"
)

func TestMain(m *testing.M) {
	natstest.Main()
	os.Exit(m.Run())
}

// kill -9 and restart of an external nats-server under load: every event
// whose publish was acknowledged is answered, with no restart of the
// connector; a consumer lost meanwhile is declared again by the runner.
func TestEveryAckedEventAnsweredAcrossNATSRestart(t *testing.T) {
	srv := natstest.StartServer(t)
	ctx := testCtx(t)
	b, err := bus.Open(ctx, bus.Config{URL: srv.URL(), Partitions: testPartitions}, zaptest.NewLogger(t).Named("bus"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	start(t, b, testOptions(t, echo.Name), echo.Handler())
	for p := range testPartitions {
		var c jetstream.Consumer
		eventually(t, "consumer declared", func() bool {
			c, err = b.JS().Consumer(ctx, bus.StreamRoute, connectors.ConsumerName(echo.Name, p))
			return err == nil
		})
		if c.CachedInfo().Config.MemoryStorage {
			t.Fatalf("partition %d: consumer state in memory on an external server", p)
		}
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		users := []string{"zhangsan", "lisi", "wangwu", "zhaoliu", "qianqi"}
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(5 * time.Millisecond):
			}
			ev := event(users[i%len(users)], "load")
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := b.PublishRoute(pctx, echo.Name, testPartitions, ev)
			cancel()
			if err == nil { // a gateway would have answered WeChat 200
				mu.Lock()
				acked[ev.ID] = true
				mu.Unlock()
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, "load under way", func() bool { return count() >= 50 })
	srv.Kill()
	time.Sleep(500 * time.Millisecond)
	srv.Start(t)
	// The state of one partition lost with the server (what a memory-storage
	// consumer suffered): the runner must declare it again by itself.
	eventually(t, "reconnected", func() bool { return b.Conn().IsConnected() })
	if err := b.JS().DeleteConsumer(ctx, bus.StreamRoute, connectors.ConsumerName(echo.Name, 1)); err != nil {
		t.Fatal(err)
	}
	before := count()
	eventually(t, "load after the restart", func() bool { return count() >= before+100 })
	close(stopLoad)
	<-loadDone

	deadline := time.Now().Add(30 * time.Second)
	for {
		answered := map[string]bool{}
		for _, o := range outbound(t, b) {
			answered[o.Data.InReplyTo] = true
		}
		missing := 0
		mu.Lock()
		for id := range acked {
			if !answered[id] {
				missing++
			}
		}
		n := len(acked)
		mu.Unlock()
		if missing == 0 {
			t.Logf("%d acknowledged events, all answered", n)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events unanswered 30 s after the restart", missing, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
