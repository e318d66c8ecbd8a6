package sender_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/natstest"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

func TestMain(m *testing.M) {
	natstest.Main()
	os.Exit(m.Run())
}

// proc is one sender "process": its own NATS connection, so that killing it
// looks to the server like kill -9 (the connection drops, nothing is handed
// back).
type proc struct {
	b        *bus.Bus
	cancel   func()
	done     chan error
	stopOnce sync.Once
}

func startProc(t *testing.T, hub *bus.Bus, api string, clock sender.Clock, cfg sender.Config, log *zap.Logger, opts ...sender.Option) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The hub's data dir holds the embedded server's generated logins.
	b, err := bus.Dial(ctx, bus.Config{URL: hub.ClientURL(), DataDir: hub.Config().DataDir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]sender.Option{sender.WithClock(clock), sender.WithRand(func() float64 { return 1 })}, opts...)
	s, err := sender.New(cfg, b, wecom.NewClient(api), log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	p := &proc{b: b, cancel: stop, done: make(chan error, 1)}
	go func() { p.done <- s.Run(runCtx) }()
	t.Cleanup(p.stop)
	return p
}

// kill drops the connection first (the server sees the client vanish with
// its messages un-acked), then stops the goroutines.
func (p *proc) kill() {
	p.b.Conn().Close()
	p.stop()
}

func (p *proc) stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
		}
		_ = p.b.Close()
	})
}

type simEnv struct {
	hub *bus.Bus
	sim *sim.Server
	api string
	cfg sender.Config
}

func newSimEnv(t *testing.T, clock sender.Clock, limits sim.Limits, users int, front func(http.Handler) http.Handler) *simEnv {
	t.Helper()
	hub, err := bus.Open(context.Background(), bus.Config{DataDir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	us := []sim.User{}
	for i := range users {
		us = append(us, sim.User{UserID: fmt.Sprintf("u%d", i), Name: "U", Department: []int64{1}})
	}
	s, err := sim.New(sim.Config{Apps: []sim.App{{Name: testApp, AgentID: 1000002, Secret: "sekret"}}, Users: us, Limits: limits}, sim.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	api := s.URL()
	if front != nil {
		srv := httptest.NewServer(front(s))
		t.Cleanup(srv.Close)
		api = srv.URL
	}
	return &simEnv{hub: hub, sim: s, api: api, cfg: sender.Config{
		CorpID: s.Config().CorpID,
		Apps:   []sender.App{{Name: testApp, AgentID: 1000002, Secret: "sekret"}},
	}}
}

func (e *simEnv) publish(t *testing.T, id, user, content string) {
	t.Helper()
	h := &harness{t: t, bus: e.hub}
	h.publish(id, "normal", user, content)
}

// contents returns what user received, in order.
func (e *simEnv) contents(user string) []string {
	var out []string
	for _, m := range e.sim.SentTo(user) {
		out = append(out, m.Content)
	}
	return out
}

// kill -9 of a sender holding a backed-off message: after the restart the
// message is delivered within 10 s, before the later messages to the same
// member, which were queued behind it.
func TestKilledSenderBackedOffMessageDeliveredInOrder(t *testing.T) {
	var failed atomic.Bool
	var attempts atomic.Int32
	front := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/message/send") {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if bytes.Contains(body, []byte(`"m0"`)) {
					attempts.Add(1)
					if failed.CompareAndSwap(false, true) {
						_, _ = io.WriteString(w, `{"errcode":-1,"errmsg":"system is busy"}`)
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newSimEnv(t, sender.SystemClock{}, sim.Limits{}, 1, front)
	cfg := e.cfg
	cfg.Retry = sender.Retry{Base: 30 * time.Second, Max: time.Minute, MaxAttempts: 5} // the backoff outlasts the test
	a := startProc(t, e.hub, e.api, sender.SystemClock{}, cfg, zaptest.NewLogger(t).Named("A"))
	e.publish(t, "id0", "u0", "m0")
	waitFor(t, 20*time.Second, "the first attempt refused", failed.Load)
	for i := 1; i < 5; i++ {
		e.publish(t, fmt.Sprintf("id%d", i), "u0", fmt.Sprintf("m%d", i))
	}
	time.Sleep(300 * time.Millisecond) // A holds all five: m0 backed off, the rest behind it
	if got := e.contents("u0"); len(got) != 0 {
		t.Fatalf("sent %q while m0 was backed off", got)
	}
	a.kill()
	restarted := time.Now()
	startProc(t, e.hub, e.api, sender.SystemClock{}, cfg, zaptest.NewLogger(t).Named("B"))
	waitFor(t, 20*time.Second, "all five delivered", func() bool { return len(e.contents("u0")) >= 5 })
	took := time.Since(restarted)
	if took > 10*time.Second {
		t.Fatalf("delivered %s after the restart, want within 10 s", took)
	}
	want := []string{"m0", "m1", "m2", "m3", "m4"}
	if got := e.contents("u0"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("u0 received %q, want %q", got, want)
	}
	t.Logf("recovered in %s", took)
}

// Two senders, members sent twice their per-minute limit: one sender is
// active at a time (pinned), so each member's messages arrive in order and no
// 60 s window holds more than the limit; when the active one is killed the
// other takes over within 10 s.
func TestTwoSendersKeepLimitsAndOrder(t *testing.T) {
	const limit, members = 5, 3
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	e := newSimEnv(t, clock, sim.Limits{MemberPerMinute: limit}, members, nil)
	cfg := e.cfg
	cfg.Limits.PerMemberMinute = limit
	var procs []*proc
	calls := make([]*atomic.Int32, 2)
	for i, n := range []string{"A", "B"} {
		calls[i] = new(atomic.Int32)
		c := calls[i]
		counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/message/send") {
				c.Add(1)
			}
			e.sim.ServeHTTP(w, r)
		}))
		t.Cleanup(counted.Close)
		procs = append(procs, startProc(t, e.hub, counted.URL, clock, cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named(n)))
	}
	for i := range 2 * limit {
		for u := range members {
			e.publish(t, fmt.Sprintf("u%d-%d", u, i), fmt.Sprintf("u%d", u), fmt.Sprintf("m%02d", i))
		}
	}
	sent := func() int { return e.sim.Stats().Sent }
	waitFor(t, 30*time.Second, "the first window's messages", func() bool { return sent() >= limit*members })
	time.Sleep(300 * time.Millisecond) // a second sender ignoring the first's ledger would overshoot now
	if n := sent(); n != limit*members {
		t.Fatalf("sent %d in the first minute, want %d", n, limit*members)
	}
	clock.Advance(62 * time.Second)
	waitFor(t, 30*time.Second, "all messages", func() bool { return sent() >= 2*limit*members })

	if calls[0].Load() > 0 && calls[1].Load() > 0 {
		t.Fatalf("both senders sent (%d and %d calls): one at a time is what keeps the order", calls[0].Load(), calls[1].Load())
	}
	// The active sender dies once it has acked everything (a kill between a
	// send and its ack is the at-least-once case, see TestKilledSenderMidBacklog);
	// the standby sends what comes next within 10 s.
	waitFor(t, 30*time.Second, "the acks of every sent message", func() bool {
		c, err := e.hub.JS().Consumer(context.Background(), bus.StreamOut, cmp.Or(cfg.Consumer, sender.DefaultConsumer))
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	active, standby := 0, 1
	if calls[1].Load() > 0 {
		active, standby = 1, 0
	}
	procs[active].kill()
	clock.Advance(62 * time.Second)
	killed := time.Now()
	for u := range members {
		e.publish(t, fmt.Sprintf("u%d-late", u), fmt.Sprintf("u%d", u), "m99")
	}
	waitFor(t, 30*time.Second, "the late messages", func() bool { return sent() >= 2*limit*members+members })
	if took := time.Since(killed); took > 10*time.Second {
		t.Fatalf("the standby took over after %s, want within 10 s", took)
	} else {
		t.Logf("standby took over in %s", took)
	}
	if calls[standby].Load() == 0 {
		t.Fatal("the standby sent nothing")
	}
	// A message sent just before the kill whose ack was lost is sent again by
	// the standby; WeCom's duplicate check (enable_duplicate_check) drops the
	// copy, so the member sees it once. Anything else dropped is a failure.
	for _, d := range e.sim.Dropped() {
		if d.Reason != "duplicate" {
			t.Fatalf("simulator dropped %q: %s", d.Content, d.Reason)
		}
	}
	for u := range members {
		var want []string
		for i := range 2 * limit {
			want = append(want, fmt.Sprintf("m%02d", i))
		}
		want = append(want, "m99")
		if got := e.contents(fmt.Sprintf("u%d", u)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("u%d received %q, want %q", u, got, want)
		}
	}
}

// A consumer declared by an older version (AckWait 2m, no priority group) is
// updated in place: its position is kept and sending goes on.
func TestOldConsumerUpgraded(t *testing.T) {
	h := newHarness(t, harnessOpts{users: 1, prepare: func(h *harness) {
		_, err := h.bus.JS().CreateOrUpdateConsumer(context.Background(), bus.StreamOut, jetstream.ConsumerConfig{
			Durable: "sender", FilterSubject: bus.SubjectOutAll, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 2 * time.Minute, MaxAckPending: 20000, MaxDeliver: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
	}})
	h.publish("up-1", "normal", "u0", "after the upgrade")
	waitFor(t, 20*time.Second, "sent", func() bool { return len(h.sim.SentTo("u0")) == 1 })
	c, err := h.bus.JS().Consumer(context.Background(), bus.StreamOut, "sender")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; cfg.PriorityPolicy != jetstream.PriorityPolicyPinned || cfg.AckWait != sender.DefaultAckWait {
		t.Fatalf("consumer not upgraded: policy %v, ack wait %s", cfg.PriorityPolicy, cfg.AckWait)
	}
}

// kill -9 of a sender in the middle of a backlog to many members: the
// restarted one sends everything, each member's messages in order.
func TestKilledSenderMidBacklog(t *testing.T) {
	const members, per = 20, 10
	front := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/message/send") {
				time.Sleep(20 * time.Millisecond) // a slow WeCom: the backlog stays held
			}
			next.ServeHTTP(w, r)
		})
	}
	e := newSimEnv(t, sender.SystemClock{}, sim.Limits{}, members, front)
	cfg := e.cfg
	cfg.Workers = 2
	a := startProc(t, e.hub, e.api, sender.SystemClock{}, cfg, zaptest.NewLogger(t).Named("A"))
	for i := range per {
		for u := range members {
			e.publish(t, fmt.Sprintf("u%d-%d", u, i), fmt.Sprintf("u%d", u), fmt.Sprintf("m%02d", i))
		}
	}
	waitFor(t, 20*time.Second, "some sent", func() bool { return e.sim.Stats().Sent >= 30 })
	a.kill()
	startProc(t, e.hub, e.api, sender.SystemClock{}, cfg, zaptest.NewLogger(t).Named("B"))
	waitFor(t, 60*time.Second, "all delivered", func() bool {
		n := 0
		for u := range members {
			n += len(e.contents(fmt.Sprintf("u%d", u)))
		}
		return n >= members*per
	})
	for u := range members {
		got := e.contents(fmt.Sprintf("u%d", u))
		if !slices.IsSorted(got) {
			t.Fatalf("u%d received %q: out of order", u, got)
		}
	}
}
