package connectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/echo"
	"github.com/wxhub/wxhub/schemas"
)

func TestReplyPublishedAndEventAcked(t *testing.T) {
	b := newBus(t)
	var results sync.Map
	opts := testOptions(t, echo.Name)
	opts.OnResult = func(r connectors.Result) { results.Store(r.EventID, r) }
	start(t, b, opts, echo.Handler())
	ev := event("zhangsan", "订单 1001")
	ev.TraceParent = bus.NewTraceParent()
	route(t, b, echo.Name, ev)

	eventually(t, "one reply", func() bool { return len(outbound(t, b)) == 1 })
	o := outbound(t, b)[0]
	if o.ID != ev.ID+"/0" || o.Data.InReplyTo != ev.ID || o.Data.App != "helpdesk" || o.Data.Kind != schemas.KindMessage || o.Source != "connector/echo" {
		t.Fatalf("outbound %+v", o)
	}
	var body struct {
		ToUser  string `json:"touser"`
		MsgType string `json:"msgtype"`
		Text    struct{ Content string }
	}
	if err := json.Unmarshal(o.Data.Body, &body); err != nil || body.ToUser != "zhangsan" || body.MsgType != "text" || body.Text.Content != "echo: 订单 1001" {
		t.Fatalf("body %s: %v", o.Data.Body, err)
	}
	want, _ := bus.ParseTraceParent(ev.TraceParent)
	got, err := bus.ParseTraceParent(o.TraceParent)
	if err != nil || got.TraceID != want.TraceID {
		t.Fatalf("trace not continued: %q from %q", o.TraceParent, ev.TraceParent)
	}
	// Work-queue retention: the event leaves WXHUB_ROUTE only when acked.
	eventually(t, "event acked", func() bool { return streamMsgs(t, b, bus.StreamRoute) == 0 })
	eventually(t, "result reported", func() bool {
		r, ok := results.Load(ev.ID)
		return ok && r.(connectors.Result).Outcome == connectors.OutcomeAcked && r.(connectors.Result).Replies == 1
	})
}

func TestRedeliveredEventNotRepliedTwice(t *testing.T) {
	b := newBus(t)
	var calls atomic.Int32
	h := connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		calls.Add(1)
		return []connectors.Reply{connectors.Text(ev.Data.User, "a"), connectors.Markdown(ev.Data.User, "**b**")}, nil
	})
	start(t, b, testOptions(t, "erp"), h)
	ev := event("lisi", "x")
	// The same event routed twice under different route ids: what a redelivery
	// after a lost ack, or a DLQ replay, looks like to the connector.
	ctx := testCtx(t)
	data, _ := json.Marshal(ev)
	subj := bus.RouteSubject("erp", bus.Partition(ev.Data.User, testPartitions))
	for _, id := range []string{"r1", "r2"} {
		if _, err := b.Publish(ctx, subj, id, nil, data); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both deliveries handled", func() bool { return calls.Load() == 2 && streamMsgs(t, b, bus.StreamRoute) == 0 })
	if out := outbound(t, b); len(out) != 2 || out[0].ID != ev.ID+"/0" || out[1].ID != ev.ID+"/1" {
		t.Fatalf("want 2 distinct replies, got %d: %+v", len(out), out)
	}
}

func TestRetryWithBackoffThenSuccess(t *testing.T) {
	b := newBus(t)
	var mu sync.Mutex
	var attempts []int
	var backoffs []int
	h := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		d, _ := connectors.DeliveryFrom(ctx)
		mu.Lock()
		attempts = append(attempts, d.Attempt)
		mu.Unlock()
		if d.Attempt < 3 {
			return nil, errors.New("erp: 503")
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "ok")}, nil
	})
	opts := testOptions(t, "erp")
	opts.Backoff = func(a int) time.Duration {
		mu.Lock()
		backoffs = append(backoffs, a)
		mu.Unlock()
		return 30 * time.Millisecond
	}
	start(t, b, opts, h)
	route(t, b, "erp", event("wangwu", "x"))
	eventually(t, "success on attempt 3", func() bool { return len(outbound(t, b)) == 1 })
	eventually(t, "acked", func() bool { return streamMsgs(t, b, bus.StreamRoute) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if intsString(attempts) != "1,2,3" || intsString(backoffs) != "1,2" {
		t.Fatalf("attempts %v backoffs %v", attempts, backoffs)
	}
	if l := dlq(t, b); len(l) != 0 {
		t.Fatalf("DLQ holds %d", len(l))
	}
}

func intsString(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func TestPoisonEventDeadLetteredAfterMaxDeliver(t *testing.T) {
	b := newBus(t)
	var calls atomic.Int32
	h := connectors.HandlerFunc(func(context.Context, *schemas.Event) ([]connectors.Reply, error) {
		calls.Add(1)
		return nil, errors.New("erp: connection refused")
	})
	opts := testOptions(t, "erp")
	opts.MaxDeliver = 3
	start(t, b, opts, h)
	ev := event("zhaoliu", "x")
	route(t, b, "erp", ev)
	eventually(t, "dead letter", func() bool { return len(dlq(t, b)) == 1 })
	d := dlq(t, b)[0].Letter.Data
	if d.Stage != "connector:erp" || !strings.Contains(d.Reason, "connection refused") || d.Attempts != 3 || d.Subject != bus.RouteSubject("erp", bus.Partition("zhaoliu", testPartitions)) {
		t.Fatalf("dead letter %+v", d)
	}
	var orig schemas.Event
	if err := json.Unmarshal(d.Original, &orig); err != nil || orig.ID != ev.ID {
		t.Fatalf("original %s", d.Original)
	}
	eventually(t, "event terminated", func() bool { return streamMsgs(t, b, bus.StreamRoute) == 0 })
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 3", calls.Load())
	}
}

func TestDeadLetteredAtOnce(t *testing.T) {
	tests := []struct {
		name       string
		handler    connectors.HandlerFunc
		raw        []byte // published instead of an event when set
		wantReason string
	}{
		{name: "permanent error", handler: func(context.Context, *schemas.Event) ([]connectors.Reply, error) {
			return nil, connectors.Permanent(errors.New("unknown order 1001"))
		}, wantReason: "permanent: unknown order 1001"},
		{name: "reply without app", handler: func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
			return []connectors.Reply{connectors.Text(ev.Data.User, "x").ToApp("")}, nil
		}, wantReason: "no app"},
		{name: "reply body not an object", handler: func(context.Context, *schemas.Event) ([]connectors.Reply, error) {
			return []connectors.Reply{connectors.Raw("", json.RawMessage(`[1]`)).ToApp("helpdesk")}, nil
		}, wantReason: "JSON object"},
		{name: "invalid event JSON", raw: []byte("{not json"), wantReason: "invalid event JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBus(t)
			var calls atomic.Int32
			h := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
				calls.Add(1)
				if tt.name == "reply without app" {
					ev.Data.App = ""
				}
				return tt.handler(ctx, ev)
			})
			start(t, b, testOptions(t, "erp"), h)
			if tt.raw != nil {
				if _, err := b.Publish(testCtx(t), bus.RouteSubject("erp", 0), "raw", nil, tt.raw); err != nil {
					t.Fatal(err)
				}
			} else {
				route(t, b, "erp", event("sunqi", "x"))
			}
			eventually(t, "dead letter", func() bool { return len(dlq(t, b)) == 1 })
			d := dlq(t, b)[0].Letter.Data
			if !strings.Contains(d.Reason, tt.wantReason) || d.Attempts != 1 {
				t.Fatalf("reason %q attempts %d, want %q after 1", d.Reason, d.Attempts, tt.wantReason)
			}
			eventually(t, "event terminated", func() bool { return streamMsgs(t, b, bus.StreamRoute) == 0 })
			if n := calls.Load(); n > 1 {
				t.Fatalf("handler called %d times", n)
			}
			if out := outbound(t, b); len(out) != 0 {
				t.Fatalf("%d replies published", len(out))
			}
		})
	}
}

// orderRecorder checks that one user's events are never handled concurrently
// and records the order of contents per user.
type orderRecorder struct {
	mu     sync.Mutex
	active map[string]int
	seen   map[string][]string
	errs   []string
}

func newOrderRecorder() *orderRecorder {
	return &orderRecorder{active: map[string]int{}, seen: map[string][]string{}}
}

func (o *orderRecorder) enter(ev *schemas.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.active[ev.Data.User]++
	if o.active[ev.Data.User] > 1 {
		o.errs = append(o.errs, "concurrent events of "+ev.Data.User)
	}
}

func (o *orderRecorder) leave(ev *schemas.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.active[ev.Data.User]--
	o.seen[ev.Data.User] = append(o.seen[ev.Data.User], ev.Data.Content)
}

func (o *orderRecorder) count(user string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen[user])
}

func (o *orderRecorder) check(t *testing.T, users []string, n int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) > 0 {
		t.Fatal(o.errs[0])
	}
	for _, u := range users {
		got := o.seen[u]
		if len(got) != n {
			t.Fatalf("%s: %d events, want %d", u, len(got), n)
		}
		for i, c := range got {
			if c != strconv.Itoa(i) {
				t.Fatalf("%s out of order: %v", u, got)
			}
		}
	}
}

func TestOneUserInOrderOthersInParallel(t *testing.T) {
	b := newBus(t)
	users := usersInDistinctPartitions(2)
	userA, userB := users[0], users[1]
	rec := newOrderRecorder()
	releaseA := make(chan struct{})
	var failedOnce sync.Map
	h := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		rec.enter(ev)
		if ev.Data.User == userA && ev.Data.Content == "0" {
			<-releaseA // user A's first event blocks; B must progress meanwhile
		}
		// A retry must not let a later event of the same user overtake.
		if ev.Data.Content == "5" {
			if _, loaded := failedOnce.LoadOrStore(ev.ID, true); !loaded {
				rec.mu.Lock()
				rec.active[ev.Data.User]--
				rec.mu.Unlock()
				return nil, errors.New("transient")
			}
		}
		rec.leave(ev)
		return nil, nil
	})
	opts := testOptions(t, "erp")
	opts.Concurrency = 4
	start(t, b, opts, h)
	for i := range 10 {
		route(t, b, "erp", event(userA, strconv.Itoa(i)))
		route(t, b, "erp", event(userB, strconv.Itoa(i)))
	}
	eventually(t, "user B done while A is blocked", func() bool { return rec.count(userB) == 10 })
	if n := rec.count(userA); n != 0 {
		t.Fatalf("user A handled %d events past its blocked first one", n)
	}
	close(releaseA)
	eventually(t, "user A done", func() bool { return rec.count(userA) == 10 })
	rec.check(t, users, 10)
}

func TestOrderHoldsAcrossProcesses(t *testing.T) {
	b := newBus(t)
	users := usersInDistinctPartitions(3)
	rec := newOrderRecorder()
	h := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		rec.enter(ev)
		time.Sleep(time.Duration(rand.N(5)) * time.Millisecond) // shuffle timing between the two runners
		rec.leave(ev)
		return nil, nil
	})
	// Two runners of one connector stand for two processes.
	var handledBy [2]atomic.Int32
	for i := range 2 {
		opts := testOptions(t, "erp")
		opts.OnResult = func(connectors.Result) { handledBy[i].Add(1) }
		start(t, b, opts, h)
	}
	const n = 15
	for i := range n {
		for _, u := range users {
			route(t, b, "erp", event(u, strconv.Itoa(i)))
		}
	}
	eventually(t, "all handled", func() bool {
		for _, u := range users {
			if rec.count(u) != n {
				return false
			}
		}
		return true
	})
	rec.check(t, users, n)
	t.Logf("runner 1 handled %d, runner 2 handled %d", handledBy[0].Load(), handledBy[1].Load())
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	b := newBus(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	h := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		close(entered)
		<-release
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "done")}, nil
	})
	stop := start(t, b, testOptions(t, "erp"), h)
	route(t, b, "erp", event("zhouba", "x"))
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a handler was in flight")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	<-stopped
	if out := outbound(t, b); len(out) != 1 {
		t.Fatalf("%d replies, want 1", len(out))
	}
	if n := streamMsgs(t, b, bus.StreamRoute); n != 0 {
		t.Fatalf("event not acked: %d left", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	b := newBus(t)
	h := echo.Handler()
	tests := []struct {
		name    string
		given   connectors.Options
		wantErr string
	}{
		{name: "ok", given: connectors.Options{Name: "erp"}},
		{name: "no name", given: connectors.Options{}, wantErr: "name"},
		{name: "dotted name", given: connectors.Options{Name: "a.b"}, wantErr: "name"},
		{name: "negative concurrency", given: connectors.Options{Name: "x", Concurrency: -1}, wantErr: "concurrency"},
		{name: "negative max deliver", given: connectors.Options{Name: "x", MaxDeliver: -1}, wantErr: "max_deliver"},
		{name: "short ack wait", given: connectors.Options{Name: "x", AckWait: time.Millisecond}, wantErr: "ack_wait"},
		{name: "partitions", given: connectors.Options{Name: "x", Partitions: 5000}, wantErr: "partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectors.NewRunner(b, tt.given, h)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, connectors.ErrOptions) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrOptions naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestConsumerWithStateOnDiskIsReplaced: consumers declared by an older version
// keep their state on disk, which the server will not switch in place; the
// runner replaces them, and an event waiting in the work queue still arrives.
func TestConsumerWithStateOnDiskIsReplaced(t *testing.T) {
	b := newBus(t)
	ctx := testCtx(t)
	for p := range testPartitions {
		old := connectors.ConsumerConfig(echo.Name, p, 30*time.Second)
		old.MemoryStorage = false
		if _, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamRoute, old); err != nil {
			t.Fatal(err)
		}
	}
	ev := event("lisi", "still here")
	route(t, b, echo.Name, ev)
	start(t, b, testOptions(t, echo.Name), echo.Handler())
	eventually(t, "the waiting event answered", func() bool { return len(outbound(t, b)) == 1 })
	for p := range testPartitions {
		c, err := b.JS().Consumer(ctx, bus.StreamRoute, connectors.ConsumerName(echo.Name, p))
		if err != nil {
			t.Fatal(err)
		}
		if !c.CachedInfo().Config.MemoryStorage {
			t.Fatalf("partition %d: consumer still keeps its state on disk", p)
		}
	}
}
