package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// slowBuiltin answers an Official Account's "慢..." only once release is closed.
func slowBuiltin(release <-chan struct{}) connectors.Builtin {
	return connectors.Builtin{Type: "slow", Default: true,
		Configure: func(name string, _ *yaml.Node) (connectors.Instance, error) {
			return connectors.Instance{
				Rules: []schemas.RouteRule{{Name: "slow", To: schemas.Strings{name},
					Match: schemas.RouteMatch{Channel: schemas.Strings{schemas.ChannelMP}, Content: "^慢"}}},
				New: func(context.Context, connectors.Deps) (connectors.Handler, error) {
					return connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
						select {
						case <-release:
						case <-ctx.Done():
							return nil, ctx.Err()
						}
						return []connectors.Reply{connectors.Text(ev.Data.User, "查好了：订单已发货")}, nil
					}), nil
				},
			}, nil
		}}
}

// A reply that comes after the callback's budget is not lost: the callback
// answers "success" and the reply goes out as a customer-service message.
func TestE2EOfficialAccountPassiveFallback(t *testing.T) {
	release := make(chan struct{})
	builtins := append(append([]connectors.Builtin(nil), hub.Builtins...), slowBuiltin(release))
	e := startE2E(t, hubtest.WithBuiltins(builtins...),
		hubtest.WithConfig(func(c *config.Config) { c.Gateway.PassiveReplyWait = 300 * time.Millisecond }))
	ctx := waitCtx(t, 20*time.Second)
	openid := sim.DemoOpenIDs[2]
	d, err := e.sim.Say(ctx, "service", openid, "慢慢查一下订单")
	if err != nil || d.Answer != "success" || d.Attempts != 1 {
		t.Fatalf("say: %+v %v, want success at the first attempt", d, err)
	}
	close(release)
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == openid })
	if err != nil || m.API != "message/custom/send" || m.Content != "查好了：订单已发货" {
		t.Fatalf("sent %+v %v, want the reply as a customer-service message", m, err)
	}
}

// A legacy system reaches customers through the push API and the Official
// Account drop-in: a template message at any time, a customer-service message
// inside the 48-hour window.
func TestE2EOfficialAccountFromPushAPI(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	openid := sim.DemoOpenIDs[1]
	post := func(path, auth string, body any) map[string]any {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, "POST", e.h.URL()+path, bytes.NewReader(raw))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		m["http"] = resp.StatusCode
		return m
	}
	data := map[string]any{"first": map[string]string{"value": "您的订单已发货"}, "keyword1": map[string]string{"value": "1001"},
		"keyword2": map[string]string{"value": "顺丰"}, "remark": map[string]string{"value": "感谢惠顾"}}
	if m := post("/api/v1/messages", hub.DemoAPIKey, map[string]any{"account": "service", "touser": openid,
		"template_id": sim.DemoTemplateShipped, "url": "https://shop.example/o/1001", "data": data}); m["http"] != 202 {
		t.Fatalf("template push: %v", m)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == openid })
	if err != nil || m.API != "message/template/send" || m.Content != "您的订单已发货" {
		t.Fatalf("sent %+v %v", m, err)
	}
	text := map[string]any{"account": "service", "touser": openid, "msgtype": "text", "text": map[string]string{"content": "还有问题吗？"}}
	if m := post("/api/v1/messages", hub.DemoAPIKey, text); m["http"] != http.StatusConflict {
		t.Fatalf("custom push outside the window: %v", m)
	}
	// The drop-in: an Official Account SDK pointed at the hub.
	q := url.Values{"grant_type": {"client_credential"}, "appid": {e.sim.Config().Accounts[0].AppID}, "secret": {hub.DemoAPIKey}}
	resp, err := http.Get(e.h.URL() + "/cgi-bin/token?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	custom := map[string]any{"touser": openid, "msgtype": "text", "text": map[string]string{"content": "在的，请讲"}}
	if m := post("/cgi-bin/message/custom/send?access_token="+tok.AccessToken, "", custom); m["errcode"] != 45015.0 {
		t.Fatalf("drop-in custom outside the window: %v", m)
	}
	if _, err := e.sim.SendEvent(ctx, "service", openid, schemas.EventData{Event: "CLICK", EventKey: "CONTACT"}); err != nil {
		t.Fatal(err)
	}
	if m := post("/cgi-bin/message/custom/send?access_token="+tok.AccessToken, "", custom); m["errcode"] != 0.0 {
		t.Fatalf("drop-in custom inside the window: %v", m)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == openid && m.Content == "在的，请讲" }); err != nil {
		t.Fatal(err)
	}
}

// The simulator saves the demo account's server URL as WeChat does (signature,
// plain echostr, no msg_signature): the safe-mode account is verified.
func TestE2EOfficialAccountURLVerification(t *testing.T) {
	e := startE2E(t, hubtest.WithOnly("gateway"))
	d, err := e.sim.VerifyURL(waitCtx(t, 10*time.Second), "service")
	if err != nil || d.Status != 200 || d.Answer != d.Plain {
		t.Fatalf("verify: %+v %v", d, err)
	}
}
