package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxhub/wxhub/internal/browsertest"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/schemas"
)

// shooter saves screenshots to a temp dir, and to docs/screenshots when
// WXHUB_SCREENSHOTS=1 (so the committed pictures change only on purpose).
type shooter struct {
	t    *testing.T
	dirs []string
}

func newShooter(t *testing.T) *shooter {
	s := &shooter{t: t, dirs: []string{t.TempDir()}}
	if os.Getenv("WXHUB_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s.dirs = append(s.dirs, dir)
	}
	return s
}

func (s *shooter) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		for _, d := range s.dirs {
			if err := os.WriteFile(filepath.Join(d, name+".png"), buf, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// waitJS polls a JavaScript condition in the page.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
}

// startBrowser starts headless Debian chromium for one test and returns its
// context and a runner that gives each action its own deadline, so that a
// failure names its step and shows the page text.
func startBrowser(t *testing.T, ctx context.Context, chromium string) (context.Context, func(what string, actions ...chromedp.Action[chromedp.Void])) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, a := range actions {
			sctx, cancel := context.WithTimeout(bctx, 25*time.Second)
			err := chromedp.Do(sctx, a)
			cancel()
			if err != nil {
				text, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
				t.Fatalf("%s, step %d: %v\npage text:\n%s", what, i, err, text)
			}
		}
	}
	// Start the browser on the long-lived context (a timeout there would stop it).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx, run
}

func TestBrowserQueuesAndDLQReplay(t *testing.T) {
	chromium := browsertest.Chromium(t)
	e := newEnv(t, dashboard.WithSendLimits(dashboard.SendLimit{App: "helpdesk", Name: "corp message/send a minute", PerMinute: 600}))
	ctx := testCtx(t)
	shots := newShooter(t)
	// The sender's counter, as the sender registers it.
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxhub_sender_sends_total", Help: "Sends."}, []string{"app", "result", "errcode"})
	e.reg.MustRegister(sent)

	_, run := startBrowser(t, ctx, chromium)

	// A connector's consumer exists but nobody pulls: its queue can only grow.
	cons, err := e.bus.JS().CreateOrUpdateConsumer(ctx, bus.StreamRoute, jetstream.ConsumerConfig{
		Durable: "wxhub_erp_0", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: bus.RouteFilter("erp"), MaxAckPending: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.JS().CreateOrUpdateConsumer(ctx, bus.StreamOut, jetstream.ConsumerConfig{
		Durable: "sender", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: bus.SubjectOutAll, MaxAckPending: 20000,
	}); err != nil {
		t.Fatal(err)
	}

	base := e.srv.URL
	run("login",
		chromedp.Navigate(base+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		shots.shot("login"),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("depth-WXHUB_ROUTE")),
		waitJS(`document.querySelector("#live").classList.contains("on")`),
	)

	// The queue grows.
	for i := 0; i < 40; i++ {
		user := fmt.Sprintf("user%02d", i%7)
		ev := schemas.Event{SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("ev-%d", i), Type: "wxhub.in.text", Source: "wecom/helpdesk",
			Time: time.Now().UTC(), Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: user, MsgType: "text"}}
		// As the gateway and the router would: WXHUB_IN, then WXHUB_ROUTE, one trace.
		tctx := bus.WithTraceParent(ctx, bus.NewTraceParent())
		if _, err := e.bus.PublishJSON(tctx, bus.InSubject("wecom", "helpdesk", "text"), ev.ID, schemas.SchemaEvent, ev); err != nil {
			t.Fatal(err)
		}
		tctx = bus.WithTraceParent(ctx, bus.ChildTraceParent(bus.TraceParentFrom(tctx)))
		if _, err := e.bus.PublishJSON(tctx, bus.RouteSubject("erp", bus.Partition(user, 16)), ev.ID+"/erp", schemas.SchemaEvent, ev); err != nil {
			t.Fatal(err)
		}
	}
	publishOut(t, e.bus, 12, "out")
	sent.WithLabelValues("helpdesk", "ok", "0").Add(1)
	run("first rate sample", waitJS(`document.querySelector("#depth-WXHUB_OUT").dataset.value === "12"`))
	sent.WithLabelValues("helpdesk", "ok", "0").Add(2)
	run("queue grows",
		waitJS(`document.querySelector("#limits").textContent.includes("of 600")`),
		waitJS(`!document.querySelector("#limits").textContent.includes(" 0 / min")`),
		waitJS(`document.querySelector("#depth-WXHUB_ROUTE").dataset.value === "40"`),
		waitJS(`[...document.querySelectorAll('#consumers tr[data-consumer="wxhub_erp"] td.lag')].some(td => td.textContent === "40")`),
		waitJS(`document.querySelector('#consumers tr[data-consumer="wxhub_erp"] .pill').textContent === "stalled"`),
		shots.shot("overview-queue-grows"),
	)

	// A worker drains it.
	drained := 0
	for drained < 40 {
		batch, err := cons.Fetch(40-drained, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			drained++
		}
	}
	run("queue drains",
		waitJS(`document.querySelector("#depth-WXHUB_ROUTE").dataset.value === "0"`),
		waitJS(`document.querySelector('#consumers tr[data-consumer="wxhub_erp"] td.lag').textContent === "0"`),
		waitJS(`document.querySelector('#consumers tr[data-consumer="wxhub_erp"] .pill').textContent === "online"`),
		shots.shot("overview-queue-drained"),
	)

	// A reply the sender gave up on lands in the DLQ; the operator replays it.
	reply := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: "ev-7/0", Source: "connector/erp", Type: "wxhub.out.message",
		Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage, InReplyTo: "ev-7",
			Body: json.RawMessage(`{"touser":"user00","msgtype":"text","text":{"content":"订单 1001 已发货"}}`)}}
	raw, _ := json.Marshal(reply)
	if err := e.bus.PublishDeadLetter(ctx, "dlq/sender/WXHUB_OUT/99", schemas.DeadLetterData{
		Stage: "sender", Reason: "wecom message/send: errcode 60020: not allow to access from your ip", Attempts: 8,
		Subject: bus.OutSubject("helpdesk"), Headers: map[string]string{bus.HeaderMsgID: "ev-7/0"}, Original: raw,
	}); err != nil {
		t.Fatal(err)
	}
	run("dead letter shown",
		waitJS(`document.querySelector("#dlq-badge").textContent === "1"`),
		waitJS(`[...document.querySelectorAll("#errors li")].some(li => li.textContent.includes("trusted IP"))`),
		shots.shot("overview-dead-letter"),
		chromedp.Click(chromedp.ID("tab-dlq")),
		chromedp.WaitVisible(chromedp.CSS(`#dlq-list tr[data-seq="1"]`)),
		chromedp.Click(chromedp.CSS(`#dlq-list tr[data-seq="1"]`)),
		chromedp.WaitVisible(chromedp.ID("dlq-replay")),
		waitJS(`document.querySelector("#dlq-original").textContent.includes("ev-7/0")`),
		shots.shot("dlq-detail"),
	)
	outBefore := streamMsgs(t, e.bus, bus.StreamOut)
	run("replay",
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)(ctx, t)
			return err
		}),
		chromedp.Click(chromedp.ID("dlq-replay")),
		waitJS(`document.querySelector("#toast").textContent.startsWith("Replayed #1")`),
		waitJS(`document.querySelector("#dlq-list tbody").textContent.includes("empty")`),
	)
	// Delivered: the original is back on its subject, marked as a replay.
	st, _ := e.bus.JS().Stream(ctx, bus.StreamOut)
	m, err := st.GetLastMsgForSubject(ctx, bus.OutSubject("helpdesk"))
	if err != nil || string(m.Data) != string(raw) || m.Header.Get(bus.HeaderReplayOf) != "1" {
		t.Fatalf("replayed message: %v %s %v", err, m.Data, m.Header)
	}
	if n := streamMsgs(t, e.bus, bus.StreamOut); n != outBefore+1 {
		t.Fatalf("WXHUB_OUT holds %d, want %d", n, outBefore+1)
	}
	if _, err := e.bus.GetDLQ(ctx, 1); err == nil {
		t.Fatal("dead letter still there after replay")
	}

	// The tracer follows the reply: routed event, dead letter gone, replayed outbound.
	run("trace",
		chromedp.Click(chromedp.ID("tab-trace")),
		chromedp.SendKeys(chromedp.ID("trace-q"), "ev-7"),
		chromedp.Click(chromedp.CSS(`#trace-form button[type=submit]`)),
		waitJS(`document.querySelectorAll("#trace-hops li.outbound").length === 1`),
		waitJS(`document.querySelectorAll("#trace-hops li.event").length === 1`),
		waitJS(`document.querySelector("#trace-hops li.outbound").textContent.includes("replay")`),
		shots.shot("tracer"),
	)

	// On a phone.
	run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Click(chromedp.ID("tab-overview")),
		waitJS(`document.querySelector("#toast").hidden`),
		waitJS(`document.querySelector("#depth-WXHUB_OUT").dataset.value === "13"`),
		shots.shot("phone-overview"),
	)
}

func streamMsgs(t *testing.T, b *bus.Bus, name string) uint64 {
	t.Helper()
	st, err := b.JS().Stream(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
