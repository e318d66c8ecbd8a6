package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/wecom/sim"
)

// One call creates the WeCom meeting and posts its join card to everyone invited.
func TestE2EMeetingCreatedAndCardPosted(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 30*time.Second)
	var out struct {
		MeetingID, MeetingLink, MeetingCode, MessageID string
		Error                                          string
	}
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	resp, err := api.R().SetContext(ctx).SetResult(&out).SetError(&out).
		SetBody(map[string]any{"app": "helpdesk", "title": "故障处理", "admin_userid": "zhangsan",
			"invitees": []string{"lisi", "wangwu"}, "duration": "30m", "description": "订单服务 5xx"}).
		Post("/api/v1/meetings")
	if err != nil || resp.StatusCode() != http.StatusCreated {
		t.Fatalf("create: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	ms := e.sim.Meetings()
	if len(ms) != 1 || ms[0].ID != out.MeetingID || ms[0].Admin != "zhangsan" || ms[0].Duration != 1800 ||
		strings.Join(ms[0].Invitees, ",") != "lisi,wangwu" {
		t.Fatalf("meetings at WeCom: %+v, answer %+v", ms, out)
	}
	for _, u := range []string{"zhangsan", "lisi", "wangwu"} {
		m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == u && m.MsgType == "textcard" })
		if err != nil {
			t.Fatalf("%s got no join card: %v", u, err)
		}
		if !strings.Contains(string(m.Body), ms[0].Link) {
			t.Errorf("%s's card has no join link %s: %s", u, ms[0].Link, m.Body)
		}
	}
	// WeCom refuses an unknown member: the caller hears why, nothing is posted.
	resp, _ = api.R().SetContext(ctx).SetError(&out).
		SetBody(map[string]any{"app": "helpdesk", "title": "x", "admin_userid": "zhangsan", "invitees": []string{"nobody"}}).
		Post("/api/v1/meetings")
	if resp.StatusCode() != http.StatusBadRequest || !strings.Contains(out.Error, "60111") {
		t.Fatalf("unknown invitee: %d %s", resp.StatusCode(), resp.Body())
	}
}
