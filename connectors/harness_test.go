package connectors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

const testPartitions = 4

func newBus(t *testing.T) *bus.Bus {
	t.Helper()
	return bustest.Open(t, bus.Config{Partitions: testPartitions})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testOptions are fast options: short polls and backoffs.
func testOptions(t *testing.T, name string) connectors.Options {
	return connectors.Options{
		Name:     name,
		PollWait: 100 * time.Millisecond,
		Backoff:  connectors.ConstantBackoff(20 * time.Millisecond),
		Logger:   zaptest.NewLogger(t),
	}
}

// start runs a runner in the background; the returned stop cancels it and
// waits for Run to return.
func start(t *testing.T, b *bus.Bus, opts connectors.Options, h connectors.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- connectors.Run(ctx, b, opts, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

var evSeq int

func event(user, content string) *schemas.Event {
	evSeq++
	return &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("ev-%s-%d", user, evSeq),
		Source: "wecom/helpdesk", Type: "wxhub.in.text", Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", User: user, MsgType: "text", Content: content},
	}
}

func route(t *testing.T, b *bus.Bus, connector string, ev *schemas.Event) {
	t.Helper()
	if _, err := b.PublishRoute(testCtx(t), connector, 0, ev); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func outbound(t *testing.T, b *bus.Bus) []schemas.Outbound {
	t.Helper()
	return bustest.Outbound(t, b)
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	ctx := testCtx(t)
	st, err := b.JS().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func dlq(t *testing.T, b *bus.Bus) []bus.DLQEntry {
	t.Helper()
	l, err := b.ListDLQ(testCtx(t), bus.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// usersInDistinctPartitions returns n users whose partitions all differ.
func usersInDistinctPartitions(n int) []string {
	seen := map[int]bool{}
	var users []string
	for i := 0; len(users) < n; i++ {
		u := fmt.Sprintf("user%d", i)
		if p := bus.Partition(u, testPartitions); !seen[p] {
			seen[p] = true
			users = append(users, u)
		}
	}
	return users
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
