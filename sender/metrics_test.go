package sender_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/tracing/tracingtest"
)

// metric returns the value of the series name{labels} in reg: a counter's or
// gauge's value, a histogram's sample count; -1 when the series is absent.
func metric(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func histSum(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	fams, _ := reg.Gather()
	var sum float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

// waitMetric polls until name{labels} == want.
func waitMetric(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := metric(t, reg, name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publishReply publishes an outbound reply to an event received at eventTime.
func (h *harness) publishReply(id, touser string, eventTime time.Time) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"touser": touser, "msgtype": "text", "text": map[string]string{"content": id}})
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "connector/test", Type: "wxhub.out.message",
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: testApp, Kind: schemas.KindMessage, InReplyTo: "ev-" + id, EventTime: &eventTime, Body: body},
	}
	if _, err := h.bus.PublishJSON(context.Background(), bus.OutSubject(testApp), id, schemas.SchemaOutbound, out); err != nil {
		h.t.Fatal(err)
	}
}

type L = map[string]string

// Traffic through the simulator moves every sender metric the way it should:
// sends by result and errcode, the API call and end-to-end histograms, limiter
// waits and limit usage, quiet-hours deferrals, token refreshes, the backlog,
// and 60020 from both gettoken and message/send.
func TestSimMetrics(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zapcore.WarnLevel)
	h := newHarness(t, harnessOpts{
		users: 6, clock: clock,
		opts: []sender.Option{sender.WithRegisterer(reg)},
		log:  zap.New(core),
		cfg: func(c *sender.Config) {
			c.Limits.PerMemberMinute = 2
			c.Limits.AppDailyRecipients = 100
		},
		prepare: func(h *harness) {
			kv, err := h.bus.KV(context.Background(), bus.BucketDND)
			if err != nil {
				t.Fatal(err)
			}
			_, w, _ := sender.ParseDNDCommand("免打扰 09:00-11:00")
			if err := sender.NewDNDStore(kv).Set(context.Background(), "u5", w, clock.Now()); err != nil {
				t.Fatal(err)
			}
		},
	})
	app := L{"app": testApp}
	with := func(kv ...string) L {
		l := L{"app": testApp}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}

	// Every limit shows from the start, at 0.
	waitMetric(t, reg, "wxhub_sender_limit_usage", with("limit", "member_minute"), 0)
	if v := metric(t, reg, "wxhub_sender_limit_usage", L{"app": "*", "limit": "message_send_hour"}); v != 0 {
		t.Fatalf("corp limit usage = %v, want 0", v)
	}

	// Three replies to u0, whose limit is 2 a minute: two go, one waits.
	received := time.Now().Add(-2 * time.Second)
	for i := range 3 {
		h.publishReply(fmt.Sprintf("r%d", i), "u0", received)
	}
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "sent", "errcode", "0"), 2)
	waitMetric(t, reg, "wxhub_sender_limiter_waits_total", with("limit", "member_minute"), 1)
	waitMetric(t, reg, "wxhub_sender_backlog", L{"priority": "normal"}, 1)
	if v := metric(t, reg, "wxhub_sender_limit_usage", with("limit", "member_minute")); v != 1 {
		t.Fatalf("member_minute usage = %v, want 1 (2 of 2)", v)
	}
	if v := metric(t, reg, "wxhub_sender_limit_usage", with("limit", "daily")); v != 0.02 {
		t.Fatalf("daily usage = %v, want 0.02 (2 of 100)", v)
	}
	if v := metric(t, reg, "wxhub_sender_limit_usage", L{"app": "*", "limit": "message_send_minute"}); v != 2.0/sender.DefaultCorpAPIMinute {
		t.Fatalf("corp minute usage = %v", v)
	}
	for name, want := range map[string]float64{
		"wxhub_e2e_latency_seconds":          2,
		"wxhub_sender_send_seconds":          2,
		"wxhub_sender_limiter_wait_seconds":  1,
		"wxhub_sender_token_refreshes_total": 1,
	} {
		lb := L{}
		if name == "wxhub_sender_token_refreshes_total" {
			lb = with("result", "ok")
		}
		if v := metric(t, reg, name, lb); v != want {
			t.Fatalf("%s = %v, want %v", name, v, want)
		}
	}
	if s := histSum(t, reg, "wxhub_e2e_latency_seconds"); s < 4 || s > 60 {
		t.Fatalf("e2e latency sum %v s for two replies to events 2 s old", s)
	}
	if v := metric(t, reg, "wxhub_sender_deferrals_total", with("reason", "limit")); v < 1 {
		t.Fatalf("limit deferrals = %v", v)
	}
	clock.Advance(62 * time.Second)
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "sent", "errcode", "0"), 3)
	waitMetric(t, reg, "wxhub_sender_backlog", L{"priority": "normal"}, 0)
	if v := metric(t, reg, "wxhub_e2e_latency_seconds", L{}); v != 3 {
		t.Fatalf("e2e count = %v, want 3", v)
	}

	// -1 (busy) once: a retry with its errcode, then sent.
	h.sim.FailNext(1, -1)
	h.publish("busy", "", "u1", "busy once")
	for h.status("busy").Status != schemas.StatusSent {
		clock.Advance(200 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		if metric(t, reg, "wxhub_sender_sends_total", with("result", "sent")) > 4 {
			t.Fatal("too many sends")
		}
	}
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "retry", "errcode", "-1"), 1)

	// 60020 on message/send: permanent, counted and said plainly.
	h.sim.FailNextOn("message/send", 1, 60020)
	h.publish("ip", "", "u2", "from an untrusted IP")
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "failed", "errcode", "60020"), 1)
	waitMetric(t, reg, "wxhub_sender_ip_not_trusted_total", app, 1)
	if logs.FilterMessageSnippet("trusted IPs in the WeCom admin console").Len() != 1 {
		t.Fatalf("60020 not logged plainly: %v", logs.All())
	}

	// Bad input: failed, bad_input.
	h.publishBody("bad", "", schemas.KindMessage, json.RawMessage(`{"touser":"u3"}`))
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "failed", "errcode", "bad_input"), 1)

	// Quiet hours: deferred once, not sent.
	h.publish("quiet", "normal", "u5", "good morning")
	waitMetric(t, reg, "wxhub_sender_deferrals_total", with("reason", "quiet_hours"), 1)
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "deferred", "errcode", ""), 1)

	// The token expires and gettoken answers 60020: refused, paused 5 minutes,
	// then a fresh token and the message goes.
	h.sim.ExpireTokens()
	h.sim.FailNextOn("gettoken", 1, 60020)
	h.publish("tok", "", "u4", "after the pause")
	waitMetric(t, reg, "wxhub_sender_token_refreshes_total", with("result", "refused"), 1)
	waitMetric(t, reg, "wxhub_sender_ip_not_trusted_total", app, 2)
	waitMetric(t, reg, "wxhub_sender_sends_total", with("result", "retry", "errcode", "60020"), 1)
	if v := metric(t, reg, "wxhub_sender_sends_total", with("result", "retry", "errcode", "42001")); v != 1 {
		t.Fatalf("retry on the expired token = %v, want 1", v)
	}
	clock.Advance(5*time.Minute + time.Second)
	waitFor(t, 20*time.Second, "send after the gettoken pause", func() bool { return h.status("tok").Status == schemas.StatusSent })
	waitMetric(t, reg, "wxhub_sender_token_refreshes_total", with("result", "ok"), 2)
	if n := logs.FilterMessageSnippet("errcode 60020").Len(); n != 2 {
		t.Fatalf("60020 logged %d times, want 2 (send and gettoken)", n)
	}

	// Nothing in the exposition is unexpected: every family is the sender's.
	fams, _ := reg.Gather()
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "wxhub_sender_") && f.GetName() != "wxhub_e2e_latency_seconds" {
			t.Errorf("unexpected family %s", f.GetName())
		}
	}
}

// Without WithRegisterer the metrics go nowhere shared, and two senders can
// share one registry.
func TestRegistererOptional(t *testing.T) {
	reg := prometheus.NewRegistry()
	for i, o := range []harnessOpts{{}, {opts: []sender.Option{sender.WithRegisterer(reg)}}, {opts: []sender.Option{sender.WithRegisterer(reg)}}} {
		h := newHarness(t, o) // the third must not panic on the shared registry
		h.publish(fmt.Sprintf("m%d", i), "", "boss", "hello")
		waitFor(t, 20*time.Second, "sent", func() bool { return h.sim.Stats().Sent == 1 })
	}
	waitMetric(t, reg, "wxhub_sender_sends_total", L{"app": testApp, "result": "sent"}, 2)
	if v := metric(t, reg, "wxhub_sender_backlog", L{"priority": "normal"}); v != 0 {
		t.Fatalf("shared backlog gauge = %v", v)
	}
}

// With tracing on, each send attempt is a span in the outbound message's trace;
// a failed attempt is marked failed.
func TestSimSendSpans(t *testing.T) {
	coll := tracingtest.New(t)
	shutdown, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: coll.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 1, clock: clock})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h.sim.FailNext(1, -1)
	body, _ := json.Marshal(map[string]any{"touser": "u0", "msgtype": "text", "text": map[string]string{"content": "traced"}})
	out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: "traced", Source: "test", Type: "wxhub.out.message",
		Time: time.Now(), DataContentType: "application/json", TraceParent: tp,
		Data: schemas.OutboundData{App: testApp, Kind: schemas.KindMessage, Body: body}}
	ctx := bus.WithTraceParent(context.Background(), tp)
	if _, err := h.bus.PublishJSON(ctx, bus.OutSubject(testApp), out.ID, schemas.SchemaOutbound, out); err != nil {
		t.Fatal(err)
	}
	for h.status("traced").Status != schemas.StatusSent {
		clock.Advance(200 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	h.stop()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := coll.Spans("sender.send")
	if len(spans) != 2 {
		t.Fatalf("%d sender.send spans, want 2 (a failed attempt, then the send)", len(spans))
	}
	failed := 0
	for _, sp := range spans {
		if sp.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || sp.ParentID != "00f067aa0ba902b7" {
			t.Fatalf("span %+v is not a child of %s", sp, tp)
		}
		if sp.Attrs["wxhub.id"] != "traced" || sp.Attrs["wxhub.app"] != testApp {
			t.Fatalf("span attributes %v", sp.Attrs)
		}
		if sp.Failed {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed spans, want 1", failed)
	}
}
