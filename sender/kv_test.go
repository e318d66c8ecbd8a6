package sender

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/dnd"
)

func openBus(t testing.TB) *bus.Bus {
	t.Helper()
	return bustest.Open(t, bus.Config{})
}

func limitsKV(t testing.TB, b *bus.Bus) jetstream.KeyValue {
	t.Helper()
	kv, err := b.JS().CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: BucketLimits, History: 1, TTL: limitsTTL})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Two replicas (two limiters, each with its own cache) reserving the same
// member's window concurrently never exceed the limit between them.
func TestLimiterAcrossReplicas(t *testing.T) {
	b := openBus(t)
	kv := limitsKV(t, b)
	ctx := context.Background()
	rules := []rule{{Name: "m", Limit: 30, Span: time.Minute}}
	corp := []rule{{Name: "m", Limit: 45, Span: time.Minute, Res: time.Second}}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for r := range 3 {
		lim := newLimiter(kv, 0, time.UTC)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				user := []string{"m.a", "m.b"}[(i+r)%2]
				w, _, err := lim.reserve(ctx, t0, []claim{{key: "corp", rules: corp, n: 1, global: true}, {key: user, rules: rules, n: 1}})
				if err != nil {
					t.Error(err)
					return
				}
				if w == 0 {
					granted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// 2 members × 30 = 60 by member, but the corp ledger allows 45.
	if g := granted.Load(); g != 45 {
		t.Fatalf("granted %d, want 45", g)
	}
	// The refused reservations were rolled back: the members hold 45 between them.
	fresh := newLimiter(kv, 0, time.UTC)
	total := 0
	for _, k := range []string{"m.a", "m.b"} {
		for total < 100 {
			w, _, err := fresh.reserve(ctx, t0, []claim{{key: k, rules: rules, n: 1}})
			if err != nil {
				t.Fatal(err)
			}
			if w > 0 {
				break
			}
			total++
		}
	}
	if total != 60-45 {
		t.Fatalf("members had %d free slots, want 15", total)
	}
}

// Many workers per replica reserving on the same keys at once (the group
// commit path: one write in flight per key and replica, the rest batched) still
// grant exactly the limit across replicas, and every grant is in KV.
func TestLimiterConcurrentWorkers(t *testing.T) {
	b := openBus(t)
	kv := limitsKV(t, b)
	ctx := context.Background()
	rules := []rule{{Name: "m", Limit: 30, Span: time.Minute}}
	corp := []rule{{Name: "m", Limit: 10000, Span: time.Minute, Res: time.Second}}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		lim := newLimiter(kv, 0, time.UTC)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					w, _, err := lim.reserve(ctx, t0, []claim{{key: "m.a", rules: rules, n: 1}, {key: "corp", rules: corp, n: 1, global: true}})
					if err != nil {
						t.Error(err)
						return
					}
					if w == 0 {
						granted.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	if g := granted.Load(); g != 30 {
		t.Fatalf("granted %d, want 30", g)
	}
	fresh := newLimiter(kv, 0, time.UTC)
	if w, _, err := fresh.reserve(ctx, t0, []claim{{key: "m.a", rules: rules, n: 1}}); err != nil || w == 0 {
		t.Fatalf("member not full in KV: wait %v, err %v", w, err)
	}
	// The corp ledger counts exactly the 30 granted sends (refusals by the
	// member never reached it).
	if w, _, err := fresh.reserve(ctx, t0, []claim{{key: "corp", rules: corp, n: 10000 - 30}}); err != nil || w > 0 {
		t.Fatalf("corp ledger holds more than 30: wait %v, err %v", w, err)
	}
	if w, _, _ := fresh.reserve(ctx, t0, []claim{{key: "corp", rules: corp, n: 1}}); w == 0 {
		t.Fatal("corp ledger holds fewer than 30")
	}
}

func TestLimiterDaily(t *testing.T) {
	b := openBus(t)
	kv := limitsKV(t, b)
	ctx := context.Background()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	lim := newLimiter(kv, 0, sh)
	now := time.Date(2025, 3, 3, 23, 0, 0, 0, sh)
	c := []claim{{key: "daily.app", n: 3, daily: 5}}
	if w, _, err := lim.reserve(ctx, now, c); err != nil || w != 0 {
		t.Fatalf("first: %s %v", w, err)
	}
	w, _, err := lim.reserve(ctx, now, c)
	if err != nil || w != time.Hour {
		t.Fatalf("second: wait %s %v, want 1h (until midnight Shanghai)", w, err)
	}
	if w, _, err := lim.reserve(ctx, now.Add(time.Hour), c); err != nil || w != 0 {
		t.Fatalf("next day: %s %v", w, err)
	}
	_, _, err = lim.reserve(ctx, now, []claim{{key: "daily.app", n: 6, daily: 5}})
	if !errors.Is(err, ErrNeverFits) {
		t.Fatalf("err = %v, want ErrNeverFits", err)
	}
}

type apiErr struct{ code int }

func (e apiErr) Error() string { return "wecom error " + time.Duration(e.code).String() }

// Many replicas asking for a token at once cost one gettoken; an invalidated
// token costs one more, however many replicas report it.
func TestTokensOneRefreshForAllReplicas(t *testing.T) {
	b := openBus(t)
	ctx := context.Background()
	kv, err := b.KV(ctx, bus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	clock := NewManualClock(t0)
	var calls atomic.Int64
	get := func(ctx context.Context, corpID, secret string) (string, time.Duration, error) {
		n := calls.Add(1)
		time.Sleep(20 * time.Millisecond) // let the others pile up behind the lease
		return "tok" + string(rune('0'+n)), 7200 * time.Second, nil
	}
	app := App{Name: "helpdesk", AgentID: 1000002, Secret: "s"}
	replicas := make([]*tokens, 5)
	for i := range replicas {
		replicas[i] = newTokens(kv, "wwcorp", get, nil, clock, zap.NewNop())
	}
	fetchAll := func() []string {
		var wg sync.WaitGroup
		out := make([]string, len(replicas)*4)
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := replicas[i%len(replicas)].Token(ctx, app)
				if err != nil {
					t.Error(err)
				}
				out[i] = tok
			}()
		}
		wg.Wait()
		return out
	}
	for _, tok := range fetchAll() {
		if tok != "tok1" {
			t.Fatalf("token %q, want tok1", tok)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("gettoken calls = %d, want 1", calls.Load())
	}
	// Every replica reports tok1 as expired (42001): one refresh.
	for _, r := range replicas {
		if err := r.Invalidate(ctx, app, "tok1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range fetchAll() {
		if tok != "tok2" {
			t.Fatalf("token %q, want tok2", tok)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("gettoken calls = %d, want 2", calls.Load())
	}
	// A late report of the old token changes nothing.
	_ = replicas[0].Invalidate(ctx, app, "tok1")
	fetchAll()
	if calls.Load() != 2 {
		t.Fatalf("gettoken calls after late invalidate = %d, want 2", calls.Load())
	}
	// Close to expiry, it is refreshed early, once.
	clock.Advance(7200*time.Second - tokenEarly + time.Second)
	fetchAll()
	if calls.Load() != 3 {
		t.Fatalf("gettoken calls after expiry = %d, want 3", calls.Load())
	}
}

func TestTokensBadSecretIsNotRetriedInALoop(t *testing.T) {
	b := openBus(t)
	ctx := context.Background()
	kv, _ := b.KV(ctx, bus.BucketTokens)
	clock := NewManualClock(t0)
	var calls atomic.Int64
	bad := apiErr{40001}
	get := func(context.Context, string, string) (string, time.Duration, error) {
		calls.Add(1)
		return "", 0, bad
	}
	isBad := func(err error) bool { return errors.Is(err, bad) }
	tk := newTokens(kv, "wwcorp", get, isBad, clock, zap.NewNop())
	other := newTokens(kv, "wwcorp", get, isBad, clock, zap.NewNop())
	app := App{Name: "helpdesk", AgentID: 1000002, Secret: "wrong"}
	for range 10 {
		for _, r := range []*tokens{tk, other} {
			if _, err := r.Token(ctx, app); !errors.Is(err, ErrBadSecret) {
				t.Fatalf("err = %v, want ErrBadSecret", err)
			}
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("gettoken calls = %d, want 1", calls.Load())
	}
	clock.Advance(badSecretPause)
	_, _ = tk.Token(ctx, app)
	if calls.Load() != 2 {
		t.Fatalf("after the pause: calls = %d, want 2", calls.Load())
	}
}

// A scrape drops ledgers with nothing left in any window from the limiter's
// cache (its size and every scrape's work were unbounded), and a later
// reservation on such a key reads it from KV again and still counts right.
func TestLimitUsageScrapeForgetsIdleLedgers(t *testing.T) {
	b := openBus(t)
	kv := limitsKV(t, b)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	clock := NewManualClock(t0)
	rules := []rule{{Name: "m", Limit: 30, Span: time.Minute}, {Name: "h", Limit: 100, Span: time.Hour, Res: time.Minute}}
	s := &Sender{cfg: Config{Apps: []App{{Name: "helpdesk"}}}, clock: clock, loc: time.UTC, memberRules: rules,
		lim: newLimiter(kv, time.Second, time.UTC)}
	key := func(u string) string { return "member." + dnd.Key("helpdesk") + "." + dnd.Key(u) }
	for _, u := range []string{"u1", "u2", "u3"} {
		if w, _, err := s.lim.reserve(ctx, t0, []claim{{key: key(u), rules: rules, n: 1}}); err != nil || w != 0 {
			t.Fatalf("reserve %s: wait %v, %v", u, w, err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&limitUsage{s: s, desc: prometheus.NewDesc("wxhub_sender_limit_usage", "h", []string{"app", "corp", "limit"}, nil)})
	usage := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "limit" && l.GetValue() == "member_hour" {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		t.Fatal("no member_hour series")
		return 0
	}
	cached := func() int { s.lim.mu.Lock(); defer s.lim.mu.Unlock(); return len(s.lim.cache) }

	if v := usage(); v != 0.01 || cached() != 3 {
		t.Fatalf("at t0: usage %v, cached %d; want 0.01, 3", v, cached())
	}
	clock.Advance(30 * time.Minute) // the hour window still holds the sends
	if v := usage(); v != 0.01 || cached() != 3 {
		t.Fatalf("after 30 min: usage %v, cached %d; want 0.01, 3 (not idle yet)", v, cached())
	}
	clock.Advance(32 * time.Minute) // past 1 h + bucket + margin: idle
	if v := usage(); v != 0 || cached() != 0 {
		t.Fatalf("after 62 min: usage %v, cached %d; want 0, 0", v, cached())
	}
	// Forgotten, not lost: the next reservations read the ledger from KV again.
	now := clock.Now()
	for i := range 30 {
		if w, _, err := s.lim.reserve(ctx, now, []claim{{key: key("u1"), rules: rules, n: 1}}); err != nil || w != 0 {
			t.Fatalf("reserve %d after forgetting: wait %v, %v", i, w, err)
		}
	}
	if w, _, err := s.lim.reserve(ctx, now, []claim{{key: key("u1"), rules: rules, n: 1}}); err != nil || w == 0 {
		t.Fatalf("31st in a minute after forgetting: wait %v, %v; want a wait", w, err)
	}
	if v := usage(); v != 0.3 || cached() != 1 {
		t.Fatalf("after 30 more: usage %v, cached %d; want 0.3, 1", v, cached())
	}
}
