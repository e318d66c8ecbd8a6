package sender_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

const testApp = "helpdesk"

var shanghai = mustLoc("Asia/Shanghai")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// harness is an embedded NATS server, the WeCom simulator and a running sender
// sharing one clock.
type harness struct {
	t      testing.TB
	bus    *bus.Bus
	sim    *sim.Server
	sender *sender.Sender
	clock  sender.Clock
	cancel func() // cancels Run without waiting for it
	stop   func()
}

type harnessOpts struct {
	users   int
	limits  sim.Limits
	cfg     func(*sender.Config)
	clock   sender.Clock
	prepare func(h *harness) // before the sender starts
	opts    []sender.Option
	log     *zap.Logger
	front   func(sim http.Handler) http.Handler // in front of the simulator's API, when set
	simApps []sim.App                           // more simulated apps (another corp's)
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	if o.clock == nil {
		o.clock = sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	}
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{DataDir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	users := []sim.User{{UserID: "boss", Name: "Boss", Department: []int64{1}}}
	for i := range o.users {
		users = append(users, sim.User{UserID: fmt.Sprintf("u%d", i), Name: "U", Department: []int64{1}})
	}
	s, err := sim.New(sim.Config{
		Apps:   append([]sim.App{{Name: testApp, AgentID: 1000002, Secret: "sekret"}}, o.simApps...),
		Users:  users,
		Limits: o.limits,
	}, sim.WithClock(o.clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	cfg := sender.Config{
		CorpID: s.Config().CorpID,
		Apps:   []sender.App{{Name: testApp, AgentID: 1000002, Secret: "sekret"}},
		Retry:  sender.Retry{Base: 100 * time.Millisecond, Max: time.Second, MaxAttempts: 4},
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	opts := append([]sender.Option{sender.WithClock(o.clock), sender.WithRand(func() float64 { return 1 })}, o.opts...)
	apiURL := s.URL()
	if o.front != nil {
		srv := httptest.NewServer(o.front(s))
		t.Cleanup(srv.Close)
		apiURL = srv.URL
	}
	snd, err := sender.New(cfg, b, wecom.NewClient(apiURL), o.log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, bus: b, sim: s, sender: snd, clock: o.clock}
	if o.prepare != nil {
		o.prepare(h)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- snd.Run(runCtx) }()
	var once sync.Once
	h.cancel = cancel
	h.stop = func() { once.Do(func() { stopRun(t, cancel, done) }) }
	t.Cleanup(h.stop)
	return h
}

func stopRun(t testing.TB, cancel func(), done chan error) {
	{
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
}

func (h *harness) publish(id, priority, touser, content string) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"touser": touser, "msgtype": "text", "text": map[string]string{"content": content}})
	h.publishBody(id, priority, schemas.KindMessage, body)
}

func (h *harness) publishBody(id, priority, kind string, body json.RawMessage) {
	h.t.Helper()
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "test", Type: "wxhub.out." + kind,
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: testApp, Kind: kind, Priority: priority, Body: body},
	}
	if _, err := h.bus.PublishJSON(context.Background(), bus.OutSubject(testApp), id, schemas.SchemaOutbound, out); err != nil {
		h.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) status(id string) schemas.MessageStatus {
	kv, err := h.bus.KV(context.Background(), bus.BucketStatus)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := sender.NewStatusStore(kv).Get(context.Background(), id)
	if err != nil {
		return schemas.MessageStatus{}
	}
	return st
}

// 2,000 messages to 50 members (40 each, 30 a minute allowed): the sender holds
// the excess back, so the simulator drops none, answers no 45009, and each
// message arrives exactly once.
func TestSimLimits2000To50(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{
		users:  50,
		clock:  clock,
		limits: sim.Limits{APIPerMinute: 1800},
		cfg:    func(c *sender.Config) { c.Limits.CorpAPIMinute = 1800 },
	})
	for i := range 2000 {
		h.publish(fmt.Sprintf("m%04d", i), "", fmt.Sprintf("u%d", i%50), fmt.Sprintf("msg %d", i))
	}
	sent := func() int { return h.sim.Stats().Sent }
	waitFor(t, 60*time.Second, "the first minute's 1,500", func() bool { return sent() >= 1500 })
	time.Sleep(200 * time.Millisecond) // a sender ignoring the limit would overshoot now
	if n := sent(); n != 1500 {
		t.Fatalf("sent %d in the first minute, want 1500 (30 × 50)", n)
	}
	// Member slots free at 61 s (60 s + 1 s margin); the corp ledger's 1 s buckets a second later.
	clock.Advance(62 * time.Second)
	waitFor(t, 60*time.Second, "all 2,000", func() bool { return sent() >= 2000 })
	waitFor(t, 10*time.Second, "status of the last message", func() bool { return h.status("m1999").Status == schemas.StatusSent })

	st := h.sim.Stats()
	if d := h.sim.Dropped(); len(d) != 0 {
		t.Fatalf("simulator dropped %d messages (first: %s)", len(d), d[0].Reason)
	}
	if st.Errors["45009"] != 0 {
		t.Fatalf("45009 answered %d times", st.Errors["45009"])
	}
	if st.Calls["message/send"] != 2000 || st.Sent != 2000 {
		t.Fatalf("calls %d, sent %d; want 2000 each", st.Calls["message/send"], st.Sent)
	}
	seen := map[string]int{}
	for _, m := range h.sim.Sent() {
		seen[m.Content]++
	}
	for i := range 2000 {
		if c := fmt.Sprintf("msg %d", i); seen[c] != 1 {
			t.Fatalf("%q delivered %d times", c, seen[c])
		}
	}
}

// An access token that expires mid-run costs one gettoken, not one per message.
func TestSimExpiredTokenOneRefresh(t *testing.T) {
	h := newHarness(t, harnessOpts{users: 20})
	for i := range 20 {
		h.publish(fmt.Sprintf("a%d", i), "", fmt.Sprintf("u%d", i), fmt.Sprintf("before %d", i))
	}
	waitFor(t, 20*time.Second, "first batch", func() bool { return h.sim.Stats().Sent >= 20 })
	h.sim.ExpireTokens()
	for i := range 100 {
		h.publish(fmt.Sprintf("b%d", i), "", fmt.Sprintf("u%d", i%20), fmt.Sprintf("after %d", i))
	}
	waitFor(t, 20*time.Second, "second batch", func() bool { return h.sim.Stats().Sent >= 120 })
	if n := h.sim.GetTokenCalls(testApp); n != 2 {
		t.Fatalf("gettoken calls = %d, want 2 (start + one refresh)", n)
	}
	if d := h.sim.Dropped(); len(d) != 0 {
		t.Fatalf("dropped %d", len(d))
	}
}

// A member in quiet hours gets a normal message when the window ends; an urgent
// one passes at once.
func TestSimQuietHours(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 7, 59, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 2, clock: clock, prepare: func(h *harness) {
		kv, err := h.bus.KV(context.Background(), bus.BucketDND)
		if err != nil {
			t.Fatal(err)
		}
		_, w, err := sender.ParseDNDCommand("免打扰 22:00-08:00")
		if err != nil {
			t.Fatal(err)
		}
		if err := sender.NewDNDStore(kv).Set(context.Background(), "u0", w, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}})
	h.publish("quiet-normal", "normal", "u0", "good morning")
	h.publish("quiet-urgent", "urgent", "u0", "server down")
	h.publish("other", "normal", "u1", "not quiet")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "server down" }); err != nil {
		t.Fatal("urgent message not sent during quiet hours")
	}
	if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "not quiet" }); err != nil {
		t.Fatal("message to a member without quiet hours not sent")
	}
	waitFor(t, 10*time.Second, "deferred status", func() bool { return h.status("quiet-normal").Status == schemas.StatusDeferred })
	st := h.status("quiet-normal")
	end := time.Date(2025, 3, 3, 8, 0, 0, 0, shanghai)
	if st.DeferredUntil == nil || !st.DeferredUntil.Equal(end) {
		t.Fatalf("deferred until %v, want %s", st.DeferredUntil, end)
	}
	if len(h.sim.SentTo("u0")) != 1 {
		t.Fatal("normal message sent during quiet hours")
	}
	clock.Set(end.Add(-time.Second))
	time.Sleep(50 * time.Millisecond)
	if len(h.sim.SentTo("u0")) != 1 {
		t.Fatal("normal message sent before the window ended")
	}
	clock.Set(end)
	m, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "good morning" })
	if err != nil {
		t.Fatal("deferred message not sent at the window's end")
	}
	if !m.Time.Equal(end) {
		t.Fatalf("sent at %s, want %s", m.Time, end)
	}
}

// Part of a multi-recipient message waits for the quiet member; the rest goes now.
func TestSimQuietHoursSplit(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 23, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 3, clock: clock, cfg: func(c *sender.Config) { c.QuietHours = "22:00-07:00"; c.HoldMax = 24 * time.Hour }, prepare: func(h *harness) {
		kv, _ := h.bus.KV(context.Background(), bus.BucketDND)
		if err := sender.NewDNDStore(kv).Clear(context.Background(), "u1", clock.Now()); err != nil { // u1 opted out of the default
			t.Fatal(err)
		}
	}})
	h.publish("multi", "", "u0|u1|u2", "notice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "u1" }); err != nil {
		t.Fatal("u1 (no quiet hours) did not get the message")
	}
	waitFor(t, 10*time.Second, "split part deferred", func() bool { return h.status("multi-dnd").Status == schemas.StatusDeferred })
	if n := len(h.sim.SentTo("u0")) + len(h.sim.SentTo("u2")); n != 0 {
		t.Fatalf("quiet members got %d messages", n)
	}
	clock.Set(time.Date(2025, 3, 4, 7, 0, 0, 0, shanghai))
	waitFor(t, 10*time.Second, "quiet members served", func() bool { return len(h.sim.SentTo("u0")) == 1 && len(h.sim.SentTo("u2")) == 1 })
	if len(h.sim.SentTo("u1")) != 1 {
		t.Fatal("u1 got the message twice")
	}
}

// An urgent message queued behind 10,000 bulk ones overtakes them: the whole
// backlog is in WXHUB_OUT before the sender starts, the urgent message last,
// and it goes out before half the bulk (about 330 here, in ~0.2 s).
func TestSimUrgentBehindBulk(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	var start time.Time
	h := newHarness(t, harnessOpts{users: 1000, limits: sim.Limits{APIPerMinute: -1, APIPerHour: -1}, cfg: func(c *sender.Config) {
		c.Limits.CorpAPIMinute, c.Limits.CorpAPIHour = -1, -1
	}, prepare: func(h *harness) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < 10000; i += 4 {
					h.publish(fmt.Sprintf("bulk%05d", i), "bulk", fmt.Sprintf("u%d", i%1000), fmt.Sprintf("payslip %d", i))
				}
			}()
		}
		wg.Wait()
		h.publish("urgent-1", "urgent", "boss", "approve now")
		start = time.Now()
	}})
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := h.sim.WaitSent(wctx, func(m sim.SentMessage) bool { return m.User == "boss" }); err != nil {
		t.Fatal(err)
	}
	lat := time.Since(start)
	bulkDone := h.sim.Stats().Sent - 1
	t.Logf("urgent latency %s (sender start included) with %d of 10000 bulk sent before it", lat, bulkDone)
	// What is asserted is the order, not the time (which depends on the
	// machine; `make bench` measures it): the urgent message, last in the
	// stream, overtakes most of the bulk queued ahead of it.
	if bulkDone >= 5000 {
		t.Fatalf("%d bulk messages went first", bulkDone)
	}
}

// Retries: -1 and 5xx are retried with backoff; a permanent error and bad input
// go to the DLQ with the reason, and the status says failed.
func TestSimRetriesAndDeadLetters(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 3, clock: clock})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	h.sim.FailNext(1, -1)
	h.sim.FailNext(1, 502)
	h.publish("retry", "", "u0", "eventually")
	for h.status("retry").Status != schemas.StatusSent {
		clock.Advance(200 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("retried message never sent")
		}
	}
	if st := h.status("retry"); st.Attempts != 2 {
		t.Fatalf("attempts = %d, want 2 failed before success", st.Attempts)
	}

	h.sim.FailNext(1, 40003)
	h.publish("perm", "", "u1", "never")
	waitFor(t, 10*time.Second, "permanent failure", func() bool { return h.status("perm").Status == schemas.StatusFailed })
	if r := h.status("perm").Reason; !strings.Contains(r, "40003") {
		t.Fatalf("reason %q does not name 40003", r)
	}

	h.sim.FailNext(10, -1)
	h.publish("busy", "", "u2", "busy")
	for h.status("busy").Status != schemas.StatusFailed {
		clock.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("message never dead-lettered after max attempts")
		}
	}

	h.publishBody("bad", "", schemas.KindMessage, json.RawMessage(`{"touser":"u0"}`))
	waitFor(t, 10*time.Second, "bad input failed", func() bool { return h.status("bad").Status == schemas.StatusFailed })
	if r := h.status("bad").Reason; !strings.Contains(r, "msgtype") {
		t.Fatalf("reason %q does not name msgtype", r)
	}

	entries, err := h.bus.ListDLQ(context.Background(), bus.DLQFilter{Stage: sender.DLQStage})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("DLQ holds %d sender entries, want 3 (perm, busy, bad)", len(entries))
	}
}

// A WeCom call in flight when the sender is stopped is let finish: cutting it
// would leave unknown whether WeCom delivered the message.
func TestStopLetsCallsInFlightFinish(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	cut := make(chan struct{}, 1)
	var once sync.Once
	h := newHarness(t, harnessOpts{front: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/message/send") {
				once.Do(func() { close(entered) })
				select {
				case <-release:
				case <-r.Context().Done(): // the sender gave up on the call
					cut <- struct{}{}
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}})
	h.publish("inflight", "normal", "boss", "hello")
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the send call never reached WeCom")
	}
	h.cancel()
	// The sender notices the cancel at once; a cut call shows within this bound.
	select {
	case <-cut:
		t.Fatal("stopping the sender cut the WeCom call in flight")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	h.stop()
	if got := len(h.sim.SentTo("boss")); got != 1 {
		t.Fatalf("WeCom got %d messages, want 1", got)
	}
	if st := h.status("inflight"); st.Status != schemas.StatusSent {
		t.Fatalf("status after stop = %q, want %q", st.Status, schemas.StatusSent)
	}
}
