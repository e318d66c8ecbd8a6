package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
)

type dlqItem struct {
	Seq      uint64 `json:"seq"`
	Stage    string `json:"stage"`
	Reason   string `json:"reason"`
	Subject  string `json:"subject"`
	Hint     string `json:"hint"`
	Original string `json:"original"`
	Encoding string `json:"encoding"`
}

func TestDLQBrowseReplayDrop(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	admin := e.client(t)
	admin.login(adminToken)

	orig := schemas.Outbound{ID: "o-42", Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage, Body: []byte(`{"touser":"lisi"}`)}}
	raw, _ := json.Marshal(orig)
	letters := []schemas.DeadLetterData{
		{Stage: "sender", Reason: "wecom: errcode 60020 not allow to access from your ip", Attempts: 8, Subject: bus.OutSubject("helpdesk"),
			Headers: map[string]string{bus.HeaderMsgID: "o-42"}, Original: raw},
		{Stage: "connector:erp", Reason: "erp: 500", Attempts: 5, Subject: bus.RouteSubject("erp", 1), Original: []byte{0xff, 0xfe, 0x00}},
		{Stage: "router", Reason: "no rule", Attempts: 1, Subject: bus.InSubject("wecom", "helpdesk", "text"), Original: []byte(`{"id":"e1"}`)},
	}
	for i, l := range letters {
		if err := e.bus.PublishDeadLetter(ctx, fmt.Sprintf("dl-%d", i), l); err != nil {
			t.Fatal(err)
		}
	}

	var page struct {
		Items []dlqItem `json:"items"`
		Total uint64    `json:"total"`
		Next  uint64    `json:"next"`
	}
	admin.getJSON("/dashboard/api/dlq", &page)
	if len(page.Items) != 3 || page.Total != 3 || page.Items[0].Stage != "sender" || !strings.Contains(page.Items[0].Hint, "trusted IP") {
		t.Fatalf("list: %+v", page)
	}
	admin.getJSON("/dashboard/api/dlq?stage=connector:erp", &page)
	if len(page.Items) != 1 || page.Items[0].Seq != 2 {
		t.Fatalf("list by stage: %+v", page)
	}
	admin.getJSON("/dashboard/api/dlq?limit=1", &page)
	if len(page.Items) != 1 || page.Next != 1 {
		t.Fatalf("paged list: %+v", page)
	}

	tests := []struct {
		name     string
		seq      int
		wantOrig string
		wantEnc  string
	}{
		{"json original is indented", 1, "\"id\": \"o-42\"", ""},
		{"binary original stays base64", 2, "//4A", "base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d dlqItem
			admin.getJSON(fmt.Sprintf("/dashboard/api/dlq/%d", tt.seq), &d)
			if !strings.Contains(d.Original, tt.wantOrig) || d.Encoding != tt.wantEnc {
				t.Fatalf("detail: %+v", d)
			}
		})
	}
	bad := []struct {
		name string
		path string
		want int
	}{
		{"missing", "/dashboard/api/dlq/99", http.StatusNotFound},
		{"not a number", "/dashboard/api/dlq/x", http.StatusBadRequest},
		{"zero", "/dashboard/api/dlq/0", http.StatusBadRequest},
		{"bad after", "/dashboard/api/dlq?after=-1", http.StatusBadRequest},
		{"bad limit", "/dashboard/api/dlq?limit=5000", http.StatusBadRequest},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if res := admin.get(tt.path); res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
		})
	}

	// Replay: the original is back on its subject, the dead letter is gone.
	if res := admin.post("/dashboard/api/dlq/1/replay", admin.csrf); res.StatusCode != http.StatusOK {
		t.Fatalf("replay: %d", res.StatusCode)
	}
	st, _ := e.bus.JS().Stream(ctx, bus.StreamOut)
	m, err := st.GetLastMsgForSubject(ctx, bus.OutSubject("helpdesk"))
	if err != nil {
		t.Fatalf("replayed message: %v", err)
	}
	if string(m.Data) != string(raw) || m.Header.Get(bus.HeaderReplayOf) != "1" {
		t.Fatalf("replayed %s headers %v", m.Data, m.Header)
	}
	if res := admin.get("/dashboard/api/dlq/1"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("after replay: %d, want 404", res.StatusCode)
	}
	if res := admin.post("/dashboard/api/dlq/1/replay", admin.csrf); res.StatusCode != http.StatusNotFound {
		t.Fatalf("second replay: %d, want 404", res.StatusCode)
	}
	// Drop.
	if res := admin.post("/dashboard/api/dlq/3/drop", admin.csrf); res.StatusCode != http.StatusOK {
		t.Fatalf("drop: %d", res.StatusCode)
	}
	admin.getJSON("/dashboard/api/dlq", &page)
	if len(page.Items) != 1 || page.Items[0].Seq != 2 {
		t.Fatalf("after replay and drop: %+v", page)
	}
}

type traceResp struct {
	Hops []struct {
		Kind     string `json:"kind"`
		Stream   string `json:"stream"`
		ID       string `json:"id"`
		Summary  string `json:"summary"`
		Inferred bool   `json:"inferred"`
	} `json:"hops"`
	Scanned map[string]uint64 `json:"scanned"`
}

func (tr traceResp) kinds() string {
	var k []string
	for _, h := range tr.Hops {
		k = append(k, h.Kind)
	}
	return strings.Join(k, ",")
}

func TestTracer(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	c := e.client(t)
	c.login(viewerToken)

	// One conversation: event -> routed -> reply -> sent; plus noise from another user.
	tp := bus.NewTraceParent()
	tctx := bus.WithTraceParent(ctx, tp)
	ev := schemas.Event{ID: "ev-1", Type: "wxhub.in.text", Source: "wecom/helpdesk",
		Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: "zhangsan", MsgType: "text", MsgID: "7311", Content: "订单 1001"}}
	mustPub := func(ctx context.Context, subj, id, schema string, v any) {
		t.Helper()
		if _, err := e.bus.PublishJSON(ctx, subj, id, schema, v); err != nil {
			t.Fatal(err)
		}
	}
	mustPub(tctx, bus.InSubject("wecom", "helpdesk", "text"), "ev-1", schemas.SchemaEvent, ev)
	mustPub(bus.WithTraceParent(ctx, bus.ChildTraceParent(tp)), bus.RouteSubject("erp", 2), "ev-1/erp", schemas.SchemaEvent, ev)
	// The reply has a fresh trace (a connector that does not propagate): linked by in_reply_to.
	reply := schemas.Outbound{ID: "ev-1/0", Source: "connector/erp", Type: "wxhub.out.message",
		Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage, InReplyTo: "ev-1", Body: []byte(`{"touser":"zhangsan","msgtype":"text"}`)}}
	mustPub(ctx, bus.OutSubject("helpdesk"), "ev-1/0", schemas.SchemaOutbound, reply)
	other := ev
	other.ID, other.Data.User, other.Data.MsgID = "ev-2", "lisi", "7312"
	mustPub(ctx, bus.InSubject("wecom", "helpdesk", "text"), "ev-2", schemas.SchemaEvent, other)
	kv, err := e.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(schemas.MessageStatus{ID: "ev-1/0", App: "helpdesk", Status: schemas.StatusSent, WeComMsgID: "wm-1", UpdatedAt: time.Now().UTC().Add(time.Second)})
	if _, err := kv.Put(ctx, sender.StatusKey("ev-1/0"), st); err != nil {
		t.Fatal(err)
	}
	// lisi's reply failed and went to the DLQ.
	failed := reply
	failed.ID, failed.Data.InReplyTo, failed.Data.Body = "ev-2/0", "ev-2", []byte(`{"touser":"lisi"}`)
	raw, _ := json.Marshal(failed)
	if err := e.bus.PublishDeadLetter(ctx, "dl-ev-2", schemas.DeadLetterData{Stage: "sender", Reason: "81013", Attempts: 8,
		Subject: bus.OutSubject("helpdesk"), Headers: map[string]string{bus.HeaderMsgID: "ev-2/0"}, Original: raw}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		query     string
		wantKinds string
	}{
		{"by event id", "id=ev-1", "event,routed,outbound,status"},
		{"by WeChat MsgId", "id=7311", "event,routed,outbound,status"},
		{"by reply id", "id=ev-1/0", "event,routed,outbound,status"},
		{"by user", "user=zhangsan", "event,routed,outbound,status"},
		{"dead letter by event id", "id=ev-2", "event,dead_letter"},
		{"dead letter by user", "user=lisi", "event,dead_letter"},
		{"unknown id", "id=nope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr traceResp
			c.getJSON("/dashboard/api/trace?"+tt.query, &tr)
			if got := tr.kinds(); got != tt.wantKinds {
				t.Fatalf("hops %s, want %s (%+v)", got, tt.wantKinds, tr.Hops)
			}
			if tr.Scanned[bus.StreamIn] != 2 {
				t.Fatalf("scanned %v", tr.Scanned)
			}
		})
	}
	if res := c.get("/dashboard/api/trace"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("no query: %d, want 400", res.StatusCode)
	}
}

// Answers keep no status record (docs/outbound.md#status): the tracer tells
// their fate from the sender's consumer — acked (sent), taken but not yet
// acked, or not yet taken.
func TestTracerInfersAnswerFateFromSenderConsumer(t *testing.T) {
	const consumer = "sender-test" // not the default: the option is honoured
	e := newEnv(t, dashboard.WithSenderConsumer(consumer))
	ctx := testCtx(t)
	c := e.client(t)
	c.login(viewerToken)

	// Stands in for the sender: the same kind of durable on WXHUB_OUT.
	cons, err := e.bus.JS().CreateOrUpdateConsumer(ctx, bus.StreamOut, jetstream.ConsumerConfig{
		Durable: consumer, FilterSubject: bus.SubjectOutAll, AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ev-1/m0", "ev-2/m0", "ev-3/m0"} {
		ans := schemas.Outbound{ID: id, Source: "connector/erp", Type: "wxhub.out.message",
			Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage, InReplyTo: strings.TrimSuffix(id, "/m0"),
				Body: []byte(`{"touser":"zhangsan","msgtype":"text"}`)}}
		if _, err := e.bus.PublishJSON(ctx, bus.OutSubject("helpdesk"), id, schemas.SchemaOutbound, ans); err != nil {
			t.Fatal(err)
		}
	}
	// The first is sent and acked, the second taken and held, the third not taken.
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("fetched %d, want 2 (%v)", len(got), batch.Error())
	}
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ id, want string }{
		{"ev-1/m0", "sent: acked by the sender"},
		{"ev-2/m0", "not confirmed yet"},
		{"ev-3/m0", "has not taken it yet"},
	} {
		var tr traceResp
		c.getJSON("/dashboard/api/trace?id="+tt.id, &tr)
		if tr.kinds() != "outbound,status" {
			t.Fatalf("%s: hops %s, want outbound,status (%+v)", tt.id, tr.kinds(), tr.Hops)
		}
		h := tr.Hops[1]
		if !h.Inferred || h.ID != tt.id || !strings.Contains(h.Summary, tt.want) || !strings.Contains(h.Summary, consumer) {
			t.Fatalf("%s: status hop %+v, want inferred %q from %s", tt.id, h, tt.want, consumer)
		}
	}

	// A status record wins over the consumer: a failed answer is shown as failed.
	kv, err := e.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(schemas.MessageStatus{ID: "ev-1/m0", App: "helpdesk", Status: schemas.StatusFailed, Reason: "errcode 81013", UpdatedAt: time.Now()})
	if _, err := kv.Put(ctx, sender.StatusKey("ev-1/m0"), st); err != nil {
		t.Fatal(err)
	}
	var tr traceResp
	c.getJSON("/dashboard/api/trace?id=ev-1/m0", &tr)
	if tr.kinds() != "outbound,status" || tr.Hops[1].Inferred || !strings.HasPrefix(tr.Hops[1].Summary, "failed: errcode 81013") {
		t.Fatalf("with a failed record: %+v", tr.Hops)
	}
}

// Without the sender's consumer (a hub running no sender) an answer without a
// status record has no status hop, and the trace still answers.
func TestTracerWithoutSenderConsumer(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	c := e.client(t)
	c.login(viewerToken)
	ans := schemas.Outbound{ID: "ev-9/m0", Source: "connector/erp", Type: "wxhub.out.message",
		Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage, InReplyTo: "ev-9", Body: []byte(`{"touser":"zhangsan"}`)}}
	if _, err := e.bus.PublishJSON(ctx, bus.OutSubject("helpdesk"), ans.ID, schemas.SchemaOutbound, ans); err != nil {
		t.Fatal(err)
	}
	var tr traceResp
	c.getJSON("/dashboard/api/trace?id=ev-9/m0", &tr)
	if tr.kinds() != "outbound" {
		t.Fatalf("hops %s, want outbound only", tr.kinds())
	}
}

func TestTracerScansOnlyTheNewest(t *testing.T) {
	b := openBus(t)
	cfg := testConfig()
	cfg.TraceScan = 3
	d, err := dashboard.New(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	publishOut(t, b, 10, "o")
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, d.Handler())
	e := &env{bus: b, d: d}
	e.srv = newServer(t, mux)
	c := e.client(t)
	c.login(adminToken)
	var tr traceResp
	c.getJSON("/dashboard/api/trace?id=o-9", &tr)
	if tr.Scanned[bus.StreamOut] != 3 || tr.kinds() != "outbound" {
		t.Fatalf("scanned %v hops %s", tr.Scanned, tr.kinds())
	}
	c.getJSON("/dashboard/api/trace?id=o-0", &tr)
	if len(tr.Hops) != 0 {
		t.Fatalf("o-0 is outside the scan window, got %s", tr.kinds())
	}
}

type overview struct {
	Streams []struct {
		Name     string `json:"name"`
		Messages uint64 `json:"messages"`
	} `json:"streams"`
	Consumers []struct {
		Name    string `json:"name"`
		Pending uint64 `json:"pending"`
		Health  string `json:"health"`
	} `json:"consumers"`
	DLQ    struct{ Total uint64 } `json:"dlq"`
	Limits []struct {
		App  string  `json:"app"`
		Sent float64 `json:"sent_per_minute"`
	} `json:"limits"`
	Errors []struct {
		Kind   string `json:"kind"`
		ID     string `json:"id"`
		Reason string `json:"reason"`
		Hint   string `json:"hint"`
	} `json:"errors"`
}

func (o overview) depth(stream string) uint64 {
	for _, s := range o.Streams {
		if s.Name == stream {
			return s.Messages
		}
	}
	return 1 << 63
}

func TestOverviewAndEvents(t *testing.T) {
	e := newEnv(t, dashboard.WithSendLimits(dashboard.SendLimit{App: "helpdesk", Name: "corp", PerMinute: 100}))
	ctx := testCtx(t)
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxhub_sender_sends_total", Help: "h"}, []string{"app", "result"})
	e.reg.MustRegister(sent)
	sent.WithLabelValues("helpdesk", "ok").Add(1)
	c := e.client(t)
	c.login(viewerToken)

	publishOut(t, e.bus, 4, "m")
	if _, err := e.bus.JS().CreateOrUpdateConsumer(ctx, bus.StreamOut, jetstream.ConsumerConfig{Durable: "sender", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	var ov overview
	eventually(t, 10*time.Second, "overview shows the queue", func() bool {
		c.getJSON("/dashboard/api/overview", &ov)
		return ov.depth(bus.StreamOut) == 4 && len(ov.Consumers) == 1 && ov.Consumers[0].Pending == 4 && ov.Consumers[0].Health == "stalled"
	})
	if len(ov.Limits) != 1 || ov.Limits[0].App != "helpdesk" {
		t.Fatalf("limits %+v", ov.Limits)
	}

	// A failed send status reaches "recent errors" through the watcher, which
	// starts in the background: whether it is written before or after the
	// watch begins, it shows (the watcher reads the newest writes first).
	kv, _ := e.bus.KV(ctx, bus.BucketStatus)
	putFailed := func() {
		st, _ := json.Marshal(schemas.MessageStatus{ID: "m-1", App: "helpdesk", Status: schemas.StatusFailed, Reason: "errcode 60020", UpdatedAt: time.Now()})
		if _, err := kv.Put(ctx, "m-1", st); err != nil {
			t.Fatal(err)
		}
	}
	putFailed()

	// The event stream delivers overviews that follow the sends.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/dashboard/api/events", nil)
	res := c.do(req)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sawRate, sawStatus := false, false
	deadline := time.Now().Add(15 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) && !(sawRate && sawStatus) {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		sent.WithLabelValues("helpdesk", "ok").Add(10)
		var o overview
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &o); err != nil {
			t.Fatalf("event: %v", err)
		}
		if len(o.Limits) == 1 && o.Limits[0].Sent > 0 {
			sawRate = true
		}
		for _, er := range o.Errors {
			if er.Kind == "status" && strings.Contains(er.Reason, "60020") {
				sawStatus = true
			}
		}
	}
	if !sawRate || !sawStatus {
		t.Fatalf("events: rate moved %v, failed status shown %v", sawRate, sawStatus)
	}
}

// Failures written before the dashboard started are in "recent errors" too,
// once each, with those written after.
func TestRecentErrorsIncludeFailuresBeforeStart(t *testing.T) {
	b := openBus(t)
	ctx := testCtx(t)
	kv, err := b.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, status, reason string) {
		st, _ := json.Marshal(schemas.MessageStatus{ID: id, App: "helpdesk", Status: status, Reason: reason, UpdatedAt: time.Now()})
		if _, err := kv.Put(ctx, id, st); err != nil {
			t.Fatal(err)
		}
	}
	put("early", schemas.StatusFailed, "errcode 60020 before start")
	for i := range 20 {
		put(fmt.Sprintf("ok-%d", i), schemas.StatusSent, "")
	}
	e := newEnvOnBus(t, b, testConfig())
	c := e.client(t)
	c.login(viewerToken)
	reasons := func() []string {
		var ov overview
		c.getJSON("/dashboard/api/overview", &ov)
		var out []string
		for _, er := range ov.Errors {
			if er.Kind == "status" {
				out = append(out, er.Reason)
			}
		}
		return out
	}
	eventually(t, 10*time.Second, "the failure from before the start", func() bool { return slices.Contains(reasons(), "errcode 60020 before start") })
	put("late", schemas.StatusFailed, "errcode 81013 after start")
	eventually(t, 10*time.Second, "the failure from after the start", func() bool { return slices.Contains(reasons(), "errcode 81013 after start") })
	if got := reasons(); len(got) != 2 {
		t.Fatalf("status errors %q, want the two failures once each", got)
	}
}

// A message WeCom dropped as a duplicate (status "dropped") is in "recent
// errors", said to be dropped, with a hint.
func TestRecentErrorsShowDroppedMessages(t *testing.T) {
	b := openBus(t)
	ctx := testCtx(t)
	kv, err := b.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(schemas.MessageStatus{ID: "ev-2/0", App: "helpdesk", Status: schemas.StatusDropped,
		Reason: "duplicate: WeCom dropped it, same body as ev-1/0 within duplicate_check_interval (30m0s)", UpdatedAt: time.Now()})
	if _, err := kv.Put(ctx, "ev-2/0", st); err != nil {
		t.Fatal(err)
	}
	e := newEnvOnBus(t, b, testConfig())
	c := e.client(t)
	c.login(viewerToken)
	eventually(t, 10*time.Second, "the dropped message in recent errors", func() bool {
		var ov overview
		c.getJSON("/dashboard/api/overview", &ov)
		for _, er := range ov.Errors {
			if er.ID == "ev-2/0" && strings.HasPrefix(er.Reason, "dropped by WeCom: duplicate") && er.Hint != "" {
				return true
			}
		}
		return false
	})
}
