package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/wecom/sim"
)

// A push to a department is expanded through the company directory into its
// members, so that each member's limits and quiet hours apply; a department
// the directory does not know is refused naming the field.
func TestE2EDepartmentSendExpandedThroughTheDirectory(t *testing.T) {
	e := startE2E(t, withConfig(func(c *config.Config) { hub.DemoIdentity(c, c.WeCom.APIBase, "http://"+c.Gateway.Listen) }))
	ctx := waitCtx(t, 30*time.Second)
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	for { // the first full sync
		resp, err := api.R().SetContext(ctx).Get("/api/v1/directory/departments/2/members")
		if err == nil && resp.StatusCode() == http.StatusOK && strings.Contains(string(resp.Body()), "wangwu") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the directory never synced department 2")
		case <-time.After(50 * time.Millisecond):
		}
	}
	var out map[string]any
	resp, err := api.R().SetContext(ctx).SetResult(&out).SetError(&out).
		SetBody(`{"app":"helpdesk","toparty":"2","msgtype":"text","text":{"content":"销售部周会改到周五"}}`).Post("/api/v1/messages")
	if err != nil || resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("push: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	for _, u := range []string{"zhangsan", "wangwu"} {
		m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == u && strings.Contains(m.Content, "周会") })
		if err != nil {
			t.Fatalf("%s (department 2) got nothing: %v", u, err)
		}
		if strings.Contains(string(m.Body), "toparty") {
			t.Errorf("sent to WeCom with toparty, want the members: %s", m.Body)
		}
	}
	if got := e.sim.SentTo("lisi"); len(got) != 0 {
		t.Errorf("lisi (department 3) got %d messages", len(got))
	}
	resp, _ = api.R().SetContext(ctx).SetError(&out).
		SetBody(`{"app":"helpdesk","toparty":"99","msgtype":"text","text":{"content":"x"}}`).Post("/api/v1/messages")
	if resp.StatusCode() != http.StatusBadRequest || out["field"] != "toparty" {
		t.Fatalf("unknown department: %d %s", resp.StatusCode(), resp.Body())
	}
}
