package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// A legacy system's identical notice pushed twice on purpose arrives twice
// (the simulator's strict duplicate check is on); pushed twice with one
// dedup_key, it is one message and arrives once.
func TestE2EPushTwiceArrivesTwiceUnlessDeduplicated(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 60*time.Second)
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	push := func(text, dedupKey string) string {
		t.Helper()
		body := map[string]any{"app": "helpdesk", "touser": "zhangsan", "msgtype": "text", "text": map[string]any{"content": text}}
		if dedupKey != "" {
			body["dedup_key"] = dedupKey
		}
		var acc struct{ ID string }
		resp, err := api.R().SetContext(ctx).SetResult(&acc).SetBody(body).Post("/api/v1/messages")
		if err != nil || resp.StatusCode() != http.StatusAccepted {
			t.Fatalf("push: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		pollStatus(t, ctx, api, acc.ID, "sent", func(s schemas.MessageStatus) bool { return s.Status == schemas.StatusSent })
		return acc.ID
	}
	delivered := func(text string) int {
		n := 0
		for _, m := range e.sim.Sent() {
			if m.User == "zhangsan" && m.Content == text {
				n++
			}
		}
		return n
	}

	first, second := push("仓库盘点 18:00 开始", ""), push("仓库盘点 18:00 开始", "")
	if first == second {
		t.Fatalf("two pushes without a dedup_key got one id %s", first)
	}
	if n := delivered("仓库盘点 18:00 开始"); n != 2 {
		t.Fatalf("the notice pushed twice was delivered %d times, want 2", n)
	}
	a, b := push("工资条已发放", "payslip-2026-11"), push("工资条已发放", "payslip-2026-11")
	if a != b {
		t.Fatalf("one dedup_key gave two ids %s and %s", a, b)
	}
	// A third, different message is delivered after it: had the deduplicated
	// one been sent twice, it would have arrived before this one.
	push("盘点结束", "")
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "盘点结束" }); err != nil {
		t.Fatal(err)
	}
	if n := delivered("工资条已发放"); n != 1 {
		t.Fatalf("the deduplicated push was delivered %d times, want 1", n)
	}
}
