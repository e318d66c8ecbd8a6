package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/internal/browsertest"

	"github.com/chromedp/chromedp"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// TestBrowserWholeHub drives the dashboard of a real hub in headless Chromium:
// log in, watch a connector's queue grow while the connector is down and drain
// when a second process starts it, replay a dead letter and see WeCom (the
// simulator) receive it. WXHUB_SCREENSHOTS=1 saves the pictures to docs/screenshots.
func TestBrowserWholeHub(t *testing.T) {
	chromium := browsertest.Chromium(t)
	// Hub A: everything but the echo connector, with the dashboard.
	e := startE2E(t, withConfig(func(c *config.Config) {
		c.Dashboard.AdminToken = hub.DemoDashboardToken
		c.Dashboard.Refresh = 200 * time.Millisecond
	}), withOnly("gateway", "router", "sender", "connector:help", "connector:dnd"))
	ctx := waitCtx(t, 120*time.Second)

	shotDir := t.TempDir()
	if os.Getenv("WXHUB_SCREENSHOTS") == "1" {
		shotDir = filepath.Join("..", "..", "docs", "screenshots")
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(90)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shotDir, name+".png"), buf, 0o644)
		})
	}
	waitJS := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, a := range actions {
			sctx, cancel := context.WithTimeout(bctx, 35*time.Second)
			err := chromedp.Do(sctx, a)
			cancel()
			if err != nil {
				text, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ""`))
				t.Fatalf("%s, step %d: %v\npage:\n%s", what, i, err, text)
			}
		}
	}

	run("login",
		chromedp.Navigate("http://"+e.hubAddr+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), hub.DemoDashboardToken),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("depth-WXHUB_ROUTE")),
	)

	// Twenty users write "echo ..." while no echo connector runs: WXHUB_ROUTE grows.
	for i := 0; i < 20; i++ {
		user := []string{"zhangsan", "lisi", "wangwu", "zhaoliu"}[i%4]
		if _, err := e.sim.Say(ctx, "helpdesk", user, fmt.Sprintf("echo queued %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	run("queue grows",
		waitJS(`document.querySelector("#depth-WXHUB_ROUTE").dataset.value === "20"`),
		shot("hub-queue-grows"),
	)

	// Hub B, another process in production: only the echo connector, on A's NATS.
	hubtest.Join(t, e.h, "connector:echo")
	run("queue drains",
		waitJS(`document.querySelector("#depth-WXHUB_ROUTE").dataset.value === "0"`),
		shot("hub-queue-drained"),
	)
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return strings.HasSuffix(m.Content, "queued 19") }); err != nil {
		t.Fatalf("echo replies not delivered: %v", err)
	}

	// A message the sender gave up on is in the DLQ; the operator replays it.
	out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: "m-browser-dead", Source: "api/erp", Type: "wxhub.out.message",
		Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage,
			Body: json.RawMessage(`{"touser":"sunqi","msgtype":"text","text":{"content":"重放后送达"}}`)}}
	orig, _ := json.Marshal(out)
	if err := e.bus.PublishDeadLetter(ctx, "browser-dead-1", schemas.DeadLetterData{Stage: "sender",
		Reason: "wecom message/send: errcode 60020: not allow to access from your ip", Attempts: 8,
		Subject: bus.OutSubject("helpdesk"), Original: orig}); err != nil {
		t.Fatal(err)
	}
	run("replay",
		waitJS(`document.querySelector("#dlq-badge").textContent === "1"`),
		chromedp.Click(chromedp.ID("tab-dlq")),
		chromedp.WaitVisible(chromedp.CSS(`#dlq-list tr[data-seq]`)),
		chromedp.Click(chromedp.CSS(`#dlq-list tr[data-seq]`)),
		chromedp.WaitVisible(chromedp.ID("dlq-replay")),
		shot("hub-dlq-detail"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.ID("dlq-replay")),
		waitJS(`document.querySelector("#toast").textContent.startsWith("Replayed")`),
	)
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "sunqi" && m.Content == "重放后送达" }); err != nil {
		t.Fatalf("replayed message not delivered to WeCom: %v", err)
	}
	run("delivered", chromedp.Click(chromedp.ID("tab-overview")), waitJS(`document.querySelector("#dlq-badge").textContent === "0"`))
}
