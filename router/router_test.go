package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/schemas"
)

const partitions = 4

func newBus(t *testing.T) *bus.Bus {
	t.Helper()
	return bustest.Open(t, bus.Config{Partitions: partitions})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startRouter(t *testing.T, r *router.Router) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

var n atomic.Int64

func inbound(t *testing.T, b *bus.Bus, user, content string) *schemas.Event {
	t.Helper()
	e := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("m%d", n.Add(1)), Source: "wecom/helpdesk",
		Type: "wxhub.in.text", Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: user, MsgType: "text", Content: content},
	}
	if _, err := b.PublishJSON(testCtx(t), bus.InSubject("wecom", "helpdesk", "text"), e.ID, schemas.SchemaEvent, e); err != nil {
		t.Fatal(err)
	}
	return e
}

type routed struct {
	subject string
	ev      schemas.Event
}

// routeMsgs lists WXHUB_ROUTE in stream order (no connector consumes in these tests).
func routeMsgs(t *testing.T, b *bus.Bus) []routed {
	t.Helper()
	ctx := testCtx(t)
	st, _ := b.JS().Stream(ctx, bus.StreamRoute)
	var out []routed
	for seq := uint64(1); ; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(bus.SubjectRouteAll))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var e schemas.Event
		if err := json.Unmarshal(raw.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, routed{raw.Subject, e})
		seq = raw.Sequence + 1
	}
}

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

func TestRoutesThroughNATS(t *testing.T) {
	b := newBus(t)
	r, err := router.New(loadRules(t, rulesYAML), b, zaptest.NewLogger(t), router.WithOptions(router.Options{PollWait: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	startRouter(t, r)
	order := inbound(t, b, "zhangsan", "订单 1001")
	file := inbound(t, b, "lisi", "文件 合同")
	hello := inbound(t, b, "wangwu", "你好")
	for i := range 10 {
		inbound(t, b, "zhangsan", fmt.Sprintf("订单 %d", i))
	}
	// A poison event: not JSON.
	if _, err := b.Publish(testCtx(t), bus.InSubject("wecom", "helpdesk", "text"), "bad", nil, []byte("<xml/>")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all routed", func() bool { return len(routeMsgs(t, b)) == 14 })
	got := map[string][]string{}
	var zs []string
	for _, m := range routeMsgs(t, b) {
		got[m.ev.ID] = append(got[m.ev.ID], m.subject)
		if m.ev.Data.User == "zhangsan" && m.ev.ID != order.ID {
			zs = append(zs, m.ev.Data.Content)
		}
	}
	want := map[string][]string{
		order.ID: {bus.RouteSubject("erp", bus.Partition("zhangsan", partitions))},
		file.ID:  {bus.RouteSubject("audit", bus.Partition("lisi", partitions)), bus.RouteSubject("fileshare", bus.Partition("lisi", partitions))},
		hello.ID: {bus.RouteSubject("help", bus.Partition("wangwu", partitions))},
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("%s routed to %v, want %v", id, got[id], w)
		}
	}
	for i, c := range zs {
		if c != fmt.Sprintf("订单 %d", i) {
			t.Fatalf("one user's events reordered: %v", zs)
		}
	}
	eventually(t, "poison dead-lettered", func() bool {
		l, _ := b.ListDLQ(testCtx(t), bus.DLQFilter{Stage: router.Stage})
		return len(l) == 1 && strings.Contains(l[0].Letter.Data.Reason, "invalid event JSON")
	})
}

func TestReloadMidStreamLosesNothing(t *testing.T) {
	b := newBus(t)
	toA := router.Config{Default: "a"}
	toB := router.Config{Default: "b"}
	var routedN atomic.Int64
	r, err := router.New(toA, b, zaptest.NewLogger(t), router.WithOptions(router.Options{PollWait: 100 * time.Millisecond, Batch: 8, OnRouted: func(*schemas.Event, []string) { routedN.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	startRouter(t, r)
	const total = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			inbound(t, b, fmt.Sprintf("u%d", i%7), "x")
		}
	})
	for i := 0; routedN.Load() < total/2; i++ {
		if err := r.SetRules([]router.Config{toA, toB}[i%2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	eventually(t, "all routed", func() bool { return routedN.Load() == total })
	msgs := routeMsgs(t, b)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.ev.ID]++
	}
	if len(msgs) != total || len(seen) != total {
		t.Fatalf("%d route messages for %d distinct events, want %d each once", len(msgs), len(seen), total)
	}
}

type fileConfig struct {
	Router router.Config `yaml:"router"`
}

func loadFile(path string) (router.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return router.Config{}, err
	}
	var fc fileConfig
	if err := yaml.Unmarshal(data, &fc); err != nil {
		return router.Config{}, err
	}
	return fc.Router, fc.Router.Validate()
}

func TestWatchFileReloadsAndKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wxhub.yaml")
	write := func(s string) {
		// Write then rename, as editors do; the watcher sees the new file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("router:\n  rules:\n    - {match: {keywords: [订单]}, to: erp}\n")
	cfg, err := loadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(cfg, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	load := func(p string) (router.Config, error) { loads.Add(1); return loadFile(p) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.WatchFile(ctx, path, load, nil) }()
	defer func() { cancel(); <-done }()

	e := ev(schemas.EventData{MsgType: "text", Content: "订单 1"})
	if got := r.Match(e); !slices.Equal(got, []string{"erp"}) {
		t.Fatalf("initial %v", got)
	}
	// The watcher starts asynchronously: rewrite until the change is seen.
	eventually(t, "reload to crm", func() bool {
		write("router:\n  rules:\n    - {match: {keywords: [订单]}, to: crm}\n")
		time.Sleep(50 * time.Millisecond)
		return slices.Equal(r.Match(e), []string{"crm"})
	})
	before := loads.Load()
	write("router:\n  rules:\n    - {match: {content: '(['}, to: erp}\n")
	eventually(t, "bad file loaded", func() bool { return loads.Load() > before })
	if got := r.Match(e); !slices.Equal(got, []string{"crm"}) {
		t.Fatalf("bad reload replaced the rules: %v", got)
	}
	err = r.Reload(path, loadFile)
	if !errors.Is(err, router.ErrConfig) || !strings.Contains(err.Error(), "router.rules[0].match.content") {
		t.Fatalf("Reload err %v", err)
	}
	write("router: [not, a, map]\n")
	if err := r.Reload(path, loadFile); err == nil || !slices.Equal(r.Match(e), []string{"crm"}) {
		t.Fatalf("unparsable file: err %v, rules %v", err, r.Match(e))
	}
}

func TestOrderPerUserUnderLoad(t *testing.T) {
	b := newBus(t)
	var routedN atomic.Int64
	r, err := router.New(router.Config{Rules: []router.Rule{{Match: router.Match{Keywords: []string{"x"}}, To: []string{"a", "b"}}}, Default: "c"}, b, zaptest.NewLogger(t), router.WithOptions(router.Options{PollWait: 100 * time.Millisecond, Batch: 16, OnRouted: func(*schemas.Event, []string) { routedN.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	// Published before the router starts, so that its first pulls are full batches.
	const users, per = 5, 40
	for i := range per {
		for u := range users {
			content := fmt.Sprintf("%d", i)
			if u%2 == 0 {
				content = "x " + content
			}
			inbound(t, b, fmt.Sprintf("user%d", u), content)
		}
	}
	startRouter(t, r)
	for i := range per { // and some while it runs
		inbound(t, b, "late", fmt.Sprintf("%d", i))
	}
	total := users*per + per
	eventually(t, "all routed", func() bool { return routedN.Load() == int64(total) })
	seq := map[string][]string{} // subject+user -> contents in stream order
	count := 0
	for _, m := range routeMsgs(t, b) {
		k := m.subject + " " + m.ev.Data.User
		seq[k] = append(seq[k], strings.TrimPrefix(m.ev.Data.Content, "x "))
		count++
	}
	if want := (users/2+1)*per*2 + (users/2)*per + per; count != want {
		t.Fatalf("%d route messages, want %d", count, want)
	}
	for k, s := range seq {
		for i, c := range s {
			if c != fmt.Sprint(i) {
				t.Fatalf("%s reordered: %v", k, s)
			}
		}
	}
}

// An acknowledged event is never dead-lettered because the bus is in trouble:
// a stream that stays away for many more than MaxAttempts tries only delays it.
func TestPublishFailureRetriesUntilTheStreamIsBack(t *testing.T) {
	tests := []struct {
		name      string
		failTries int // tries that must fail before WXHUB_ROUTE is declared again
	}{
		{name: "stream back after one failed try", failTries: 1},
		{name: "stream away past MaxAttempts: delayed, not dead-lettered", failTries: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBus(t)
			ctx := testCtx(t)
			if err := b.JS().DeleteStream(ctx, bus.StreamRoute); err != nil {
				t.Fatal(err)
			}
			var routedN, failed atomic.Int64
			r, err := router.New(router.Config{Default: "erp"}, b, zaptest.NewLogger(t), router.WithOptions(router.Options{PollWait: 100 * time.Millisecond,
				MaxAttempts: 2, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 40 * time.Millisecond,
				OnRouted: func(*schemas.Event, []string) { routedN.Add(1) },
				OnRetry:  func(*schemas.Event, int, error) { failed.Add(1) }}))
			if err != nil {
				t.Fatal(err)
			}
			var sent []*schemas.Event
			for i := range 3 {
				sent = append(sent, inbound(t, b, "zhangsan", fmt.Sprint(i)))
			}
			startRouter(t, r)
			eventually(t, "failed tries", func() bool { return failed.Load() >= int64(tt.failTries) })
			if l, _ := b.ListDLQ(ctx, bus.DLQFilter{Stage: router.Stage}); len(l) != 0 {
				t.Fatalf("%d events dead-lettered during the fault", len(l))
			}
			if routedN.Load() != 0 {
				t.Fatalf("%d routed without a stream", routedN.Load())
			}
			if err := b.Declare(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, "routed", func() bool { return routedN.Load() == 3 })
			var got []string
			for _, m := range routeMsgs(t, b) {
				got = append(got, m.ev.ID)
			}
			want := []string{sent[0].ID, sent[1].ID, sent[2].ID}
			if !slices.Equal(got, want) {
				t.Fatalf("routed %v, want %v in order", got, want)
			}
			if l, _ := b.ListDLQ(ctx, bus.DLQFilter{Stage: router.Stage}); len(l) != 0 {
				t.Fatalf("%d events dead-lettered", len(l))
			}
		})
	}
}
