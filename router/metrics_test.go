package router_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/tracing/tracingtest"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// simGateway plays WeCom (the simulator) against a real gateway on
// 127.0.0.1 that publishes to b's WXHUB_IN.
func simGateway(t *testing.T, b *bus.Bus) *sim.Server {
	t.Helper()
	scfg := sim.DemoConfig().WithDefaults()
	s, err := sim.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{WeCom: wecom.Config{CorpID: scfg.CorpID}}
	for _, a := range scfg.Apps {
		cfg.WeCom.Apps = append(cfg.WeCom.Apps, wecom.AppConfig{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret,
			Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
	g, err := gateway.New(cfg, b, zap.NewNop(), gateway.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	s.SetGatewayURL(srv.URL)
	return s
}

// Events said through the simulator move the router's metrics: matches per
// rule and connector ("default" for none), the route histogram, reloads by
// result. With tracing on, each routing is a span between the gateway's
// traceparent and the one the connectors receive.
func TestSimRouterMetricsAndSpans(t *testing.T) {
	coll := tracingtest.New(t)
	shutdown, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: coll.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()

	b := newBus(t)
	s := simGateway(t, b)
	reg := prometheus.NewRegistry()
	cfg := router.Config{Rules: []router.Rule{
		{Name: "orders", Match: router.Match{Content: `^订单`}, To: router.Strings{"erp"}, Continue: true},
		{Name: "audit", Match: router.Match{Keywords: router.Strings{"订单", "报销"}}, To: router.Strings{"audit", "erp"}},
	}}
	r, err := router.New(cfg, b, nil, router.WithOptions(router.Options{Registerer: reg, PollWait: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	startRouter(t, r)

	ctx := testCtx(t)
	for _, text := range []string{"订单 123", "订单 456", "报销 9", "你好"} {
		if d, err := s.Say(ctx, "helpdesk", "zhangsan", text); err != nil || d.Status != http.StatusOK {
			t.Fatalf("say %q: %v %+v", text, err, d)
		}
	}
	events := func(rule, conn string) float64 {
		return counter(t, reg, "wxhub_router_events_total", conn, rule) // labels sort by name
	}
	eventually(t, "four events routed", func() bool { return events("default", router.DefaultConnector) == 1 && events("audit", "audit") == 3 })
	want := map[[2]string]float64{
		{"orders", "erp"}: 2, {"audit", "audit"}: 3, {"audit", "erp"}: 3, {"default", "help"}: 1,
	}
	for k, v := range want {
		if got := events(k[0], k[1]); got != v {
			t.Errorf("events{rule=%s,connector=%s} = %v, want %v", k[0], k[1], got, v)
		}
	}
	if n := seriesCount(t, reg, "wxhub_router_events_total"); n != len(want) {
		t.Errorf("%d events series, want %d", n, len(want))
	}
	if got := histCount(t, reg, "wxhub_router_route_seconds"); got != 4 {
		t.Errorf("route_seconds count = %d, want 4", got)
	}

	// Reloads: one good, one bad (the old rules stay).
	good := func(string) (router.Config, error) { return cfg, nil }
	bad := func(string) (router.Config, error) { return router.Config{}, errors.New("yaml: line 3: bad indent") }
	if err := r.Reload("rules.yaml", good); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload("rules.yaml", bad); err == nil {
		t.Fatal("bad reload accepted")
	}
	for res, want := range map[string]float64{"ok": 1, "error": 1} {
		if got := counter(t, reg, "wxhub_router_reloads_total", res); got != want {
			t.Errorf("reloads{result=%s} = %v, want %v", res, got, want)
		}
	}

	// Spans: flush, then every routed message names a router.route span whose
	// parent is the inbound event's traceparent.
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	byID := map[string]tracingtest.Span{}
	for _, sp := range coll.Spans("router.route") {
		byID[sp.SpanID] = sp
	}
	if len(byID) != 4 {
		t.Fatalf("%d router.route spans exported, want 4", len(byID))
	}
	in := headersOf(t, b, bus.StreamIn, bus.SubjectInAll)
	out := headersOf(t, b, bus.StreamRoute, bus.SubjectRouteAll)
	if len(in) != 4 || len(out) != 7 {
		t.Fatalf("%d inbound, %d routed messages; want 4 and 7", len(in), len(out))
	}
	parents := map[string]bool{}
	for _, tp := range in {
		sc, err := bus.ParseTraceParent(tp)
		if err != nil {
			t.Fatal(err)
		}
		parents[sc.TraceID+sc.SpanID] = true
	}
	for _, tp := range out {
		sc, err := bus.ParseTraceParent(tp)
		if err != nil {
			t.Fatal(err)
		}
		sp, ok := byID[sc.SpanID]
		if !ok || sp.TraceID != sc.TraceID {
			t.Fatalf("routed traceparent %s names no exported router span", tp)
		}
		if !parents[sp.TraceID+sp.ParentID] {
			t.Fatalf("router span %+v is not a child of an inbound event's traceparent", sp)
		}
	}
}

// Without a Registerer the router keeps its metrics to itself, and two
// routers may share one registry.
func TestRouterRegistererOptional(t *testing.T) {
	b := newBus(t)
	if _, err := router.New(router.Config{}, b, nil); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := router.New(router.Config{}, b, nil, router.WithOptions(router.Options{Registerer: reg})); err != nil {
			t.Fatal(err)
		}
	}
}

// counter is the value of name{labels...} (label values in label-name order), 0 when absent.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := len(m.GetLabel()) == len(labels)
			for i, lp := range m.GetLabel() {
				if match && lp.GetValue() != labels[i] {
					match = false
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func seriesCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

func histCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// headersOf lists the traceparent of every message of a stream.
func headersOf(t *testing.T, b *bus.Bus, stream, filter string) []string {
	t.Helper()
	ctx := testCtx(t)
	st, err := b.JS().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := uint64(1); ; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw.Header.Get(bus.HeaderTraceParent))
		seq = raw.Sequence + 1
	}
}
