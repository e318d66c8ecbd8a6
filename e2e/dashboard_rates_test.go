package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/internal/sharedmetrics"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The sender runs in another process than the dashboard (hubtest.Join, as
// `--only sender`): the dashboard's API still shows its send rate per minute,
// from the counters every process puts on the bus.
func TestDashboardRatesOfASenderInAnotherProcess(t *testing.T) {
	h := hubtest.Start(t, hubtest.WithOnly("gateway", "router"))
	hubtest.Join(t, h, "sender")
	ctx := hubtest.Ctx(t, 60*time.Second)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := c.PostForm(h.URL()+"/dashboard/login", url.Values{"token": {hub.DemoDashboardToken}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	overview := func() dashboard.Overview {
		t.Helper()
		res, err := c.Get(h.URL() + "/dashboard/api/overview")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var ov dashboard.Overview
		if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&ov) != nil {
			t.Fatalf("overview: HTTP %d", res.StatusCode)
		}
		return ov
	}
	app := h.Config.WeCom.Apps[0].Name
	user := h.Sim.Config().Users[0].UserID
	sent := 0
	send := func(n int) {
		t.Helper()
		for range n {
			id := fmt.Sprintf("rate-%d", sent)
			body, _ := json.Marshal(map[string]any{"touser": user, "msgtype": "text", "text": map[string]string{"content": id}})
			out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: id, Source: "api/erp", Type: "wxhub.out.message",
				Time: time.Now().UTC(), DataContentType: "application/json",
				Data: schemas.OutboundData{App: app, Kind: schemas.KindMessage, Priority: schemas.PriorityUrgent, Body: body}}
			if _, err := h.Bus.PublishJSON(ctx, bus.OutSubject(app), id, schemas.SchemaOutbound, out); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		want := sent
		if _, err := h.Sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == fmt.Sprintf("rate-%d", want-1) }); err != nil {
			t.Fatalf("message %d not sent: %v", want-1, err)
		}
	}
	sends := func(ov dashboard.Overview) (dashboard.Rate, bool) {
		for _, r := range ov.Rates {
			if r.Metric == "wxhub_sender_sends_total" && r.Labels["app"] == app && r.Labels["result"] == "sent" {
				return r, true
			}
		}
		return dashboard.Rate{}, false
	}
	send(5)
	// The dashboard sees the other process's counter once it put it on the bus.
	poll(t, ctx, "the sender's counter on the dashboard", func() bool {
		r, ok := sends(overview())
		return ok && r.Total >= 5
	})
	send(5)
	var ov dashboard.Overview
	poll(t, ctx, "a send rate on the dashboard", func() bool {
		ov = overview()
		r, ok := sends(ov)
		return ok && r.Total >= 10 && r.PerMinute > 0
	})
	r, _ := sends(ov)
	if p := r.Labels[sharedmetrics.LabelProcess]; !strings.HasPrefix(p, "sender@") {
		t.Errorf("process label %q, want the sender's process", p)
	}
	var use float64
	for _, l := range ov.Limits {
		if l.App == app {
			use = l.Sent
		}
	}
	if use <= 0 {
		t.Fatalf("limits show %v sent/min for %s, want > 0: %+v", use, app, ov.Limits)
	}
	t.Logf("dashboard: %.1f sent/min (total %.0f) from %s", r.PerMinute, r.Total, r.Labels[sharedmetrics.LabelProcess])
}

// poll calls cond every 100 ms until it holds, failing the test at ctx's end.
func poll(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
