package connectors_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

var errNoSuchOrder = errors.New("no such order")

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name        string
		given       error
		wantOutcome connectors.Outcome
		wantReplies []string // outbound ids, in order, after the event is settled
		wantDLQ     int
	}{
		{"answer user", connectors.AnswerUser(errNoSuchOrder, connectors.Text("u", "没有这个订单")), connectors.OutcomeAnswered, []string{"/answer/0"}, 0},
		{"tell", connectors.Tell(errNoSuchOrder, "没有这个订单"), connectors.OutcomeAnswered, []string{"/answer/0"}, 0},
		{"tell wrapped", errors.Join(connectors.Tell(nil, "稍后再试")), connectors.OutcomeAnswered, []string{"/answer/0"}, 0},
		{"permanent", connectors.Permanent(errNoSuchOrder), connectors.OutcomeDeadLetter, nil, 1},
		{"retry with notice, last attempt", connectors.Retry(errNoSuchOrder, connectors.Text("u", "稍等")), connectors.OutcomeDeadLetter, []string{"/notice/0"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBus(t)
			var outcome atomic.Value
			opts := testOptions(t, "erp")
			opts.MaxDeliver = 1
			opts.OnResult = func(r connectors.Result) { outcome.Store(r.Outcome) }
			start(t, b, opts, connectors.HandlerFunc(func(context.Context, *schemas.Event) ([]connectors.Reply, error) {
				return nil, tt.given
			}))
			ev := event("wangwu", "订单 9")
			route(t, b, "erp", ev)
			eventually(t, "settled", func() bool { return outcome.Load() != nil && streamMsgs(t, b, bus.StreamRoute) == 0 })
			if got := outcome.Load().(connectors.Outcome); got != tt.wantOutcome {
				t.Fatalf("outcome %s, want %s", got, tt.wantOutcome)
			}
			out := outbound(t, b)
			if len(out) != len(tt.wantReplies) {
				t.Fatalf("got %d replies, want %v", len(out), tt.wantReplies)
			}
			for i, o := range out {
				if o.ID != ev.ID+tt.wantReplies[i] || o.Data.InReplyTo != ev.ID {
					t.Errorf("reply %d id %q", i, o.ID)
				}
				if strings.Contains(string(o.Data.Body), "no such order") {
					t.Errorf("error text leaked to the user: %s", o.Data.Body)
				}
			}
			if got := len(dlq(t, b)); got != tt.wantDLQ {
				t.Fatalf("dlq %d, want %d", got, tt.wantDLQ)
			}
		})
	}
}

// Tell once on the first failure, answer when the legacy system is back: the
// notice and the answer both reach the user, the notice only once.
func TestRetryNoticeSentOnceThenAnswer(t *testing.T) {
	b := newBus(t)
	var calls atomic.Int32
	start(t, b, testOptions(t, "erp"), connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		d, _ := connectors.DeliveryFrom(ctx)
		if calls.Add(1) < 3 {
			if d.MaxDeliver != 5 || d.Last() {
				t.Errorf("delivery %+v", d)
			}
			// Returned on every attempt: still sent once.
			return nil, connectors.Retry(errors.New("erp down"), connectors.Text(ev.Data.User, "系统繁忙，稍后回复"))
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "订单已发货")}, nil
	}))
	ev := event("zhaoliu", "订单 1")
	route(t, b, "erp", ev)
	eventually(t, "answered", func() bool { return streamMsgs(t, b, bus.StreamRoute) == 0 })
	out := outbound(t, b)
	if len(out) != 2 || out[0].ID != ev.ID+"/notice/0" || out[1].ID != ev.ID+"/0" {
		t.Fatalf("replies %+v", out)
	}
}

func TestUnknownSchemaDeadLettered(t *testing.T) {
	b := newBus(t)
	var called atomic.Bool
	start(t, b, testOptions(t, "erp"), connectors.HandlerFunc(func(context.Context, *schemas.Event) ([]connectors.Reply, error) {
		called.Store(true)
		return nil, nil
	}))
	h := nats.Header{}
	h.Set(bus.HeaderSchema, "wxhub.event/v2")
	if _, err := b.Publish(testCtx(t), bus.RouteSubject("erp", 0), "v2-1", h, mustJSON(event("u", "x"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dead-lettered", func() bool { return len(dlq(t, b)) == 1 })
	if d := dlq(t, b)[0].Letter.Data; !strings.Contains(d.Reason, "wxhub.event/v2") || called.Load() {
		t.Fatalf("reason %q, handler called %v", d.Reason, called.Load())
	}
}

type specHandler struct{ connectors.Handler }

func (specHandler) Spec() connectors.Spec {
	return connectors.Spec{Name: "crm", Consumes: []string{schemas.SchemaEvent}, Emits: []string{}, Concurrency: 2}
}

func TestSpecDeclaration(t *testing.T) {
	b := newBus(t)
	h := specHandler{connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		return []connectors.Reply{connectors.Text(ev.Data.User, "x")}, nil
	})}
	opts := testOptions(t, "")
	opts.MaxDeliver = 1
	r, err := connectors.NewRunner(b, opts, h)
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Spec(); s.Name != "crm" || s.Concurrency != 2 || len(s.Emits) != 0 {
		t.Fatalf("spec %+v", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	route(t, b, "crm", event("u", "x"))
	// It declared it emits nothing, so replies are a bug: DLQ, not sent.
	eventually(t, "dead-lettered", func() bool { return len(dlq(t, b)) == 1 })
	if len(outbound(t, b)) != 0 || !strings.Contains(dlq(t, b)[0].Letter.Data.Reason, "emits") {
		t.Fatalf("reason %q", dlq(t, b)[0].Letter.Data.Reason)
	}
}

func TestLoggerCarriesEventFields(t *testing.T) {
	b := newBus(t)
	core, logs := observer.New(zapcore.InfoLevel)
	opts := testOptions(t, "erp")
	opts.Logger = zap.New(core)
	start(t, b, opts, connectors.HandlerFunc(func(ctx context.Context, _ *schemas.Event) ([]connectors.Reply, error) {
		connectors.Logger(ctx).Info("calling erp")
		return nil, nil
	}))
	ev := event("u", "x")
	ev.TraceParent = bus.NewTraceParent()
	route(t, b, "erp", ev)
	eventually(t, "logged", func() bool { return logs.FilterMessage("calling erp").Len() == 1 })
	sc, _ := bus.ParseTraceParent(ev.TraceParent)
	f := logs.FilterMessage("calling erp").All()[0].ContextMap()
	if f["event"] != ev.ID || f["connector"] != "erp" || f["trace_id"] != sc.TraceID || f["attempt"] != int64(1) {
		t.Fatalf("fields %v", f)
	}
	connectors.Logger(context.Background()).Info("outside a runner: no-op, no panic")
}

func TestMetricsSharedRegistry(t *testing.T) {
	b := newBus(t)
	reg := prometheus.NewRegistry()
	ok := connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		return []connectors.Reply{connectors.Text(ev.Data.User, "x")}, nil
	})
	for range 2 { // two runners of one connector on one registry: no panic, shared series
		opts := testOptions(t, "erp")
		opts.Registerer = reg
		start(t, b, opts, ok)
	}
	opts := testOptions(t, "crm")
	opts.Registerer = reg
	opts.MaxDeliver = 1
	start(t, b, opts, connectors.HandlerFunc(func(context.Context, *schemas.Event) ([]connectors.Reply, error) {
		return nil, connectors.Permanent(errors.New("bad"))
	}))
	route(t, b, "erp", event("u1", "x"))
	route(t, b, "erp", event("u2", "x"))
	route(t, b, "crm", event("u3", "x"))
	eventually(t, "settled", func() bool { return streamMsgs(t, b, bus.StreamRoute) == 0 })
	eventually(t, "values", func() bool {
		mfs, _ := reg.Gather()
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "," + l.GetValue()
				}
				switch {
				case m.GetCounter() != nil:
					got[key] = m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					got[key] = m.GetGauge().GetValue()
				case m.GetHistogram() != nil:
					got[key] = float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return got["wxhub_connector_events_total,erp,acked"] == 2 && got["wxhub_connector_events_total,crm,dead_letter"] == 1 &&
			got["wxhub_connector_handle_seconds,erp"] == 2 && got["wxhub_connector_in_flight,erp"] == 0 &&
			got["wxhub_connector_last_event_timestamp_seconds,crm"] > 0
	})
}
