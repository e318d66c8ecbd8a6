package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/mpreply"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// A customer writes to the demo Official Account; the unmatched text is
// answered with the account's own default reply (not the employees' help
// text), passively in the callback's answer: no customer-service message.
func TestE2EOfficialAccountGetsItsOwnReply(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	openid := sim.DemoOpenIDs[0]
	d, err := e.sim.Say(ctx, "service", openid, "你好")
	if err != nil || d.Status != 200 {
		t.Fatalf("say: %+v %v", d, err)
	}
	if d.ReplyContent != mpreply.DefaultReply || strings.Contains(d.ReplyContent, "免打扰") {
		t.Fatalf("passive reply %q, want the account's default reply", d.ReplyContent)
	}
	// The sender takes the reply off its queue as delivered in the callback, and sends nothing.
	waitSenderDone(t, ctx, e)
	for _, m := range e.sim.SentTo(openid) {
		if m.API != "passive" {
			t.Errorf("also sent %+v", m)
		}
	}
	if n := e.sim.GetTokenCalls("service"); n != 0 {
		t.Errorf("token calls for the account = %d, want 0 (nothing custom-sent)", n)
	}
	// Quiet hours are the employees' setting: a customer is not told they were set.
	d, err = e.sim.Say(ctx, "service", openid, "免打扰 22:00-08:00")
	if err != nil || d.ReplyContent != mpreply.DefaultReply {
		t.Fatalf("quiet-hours command from a customer answered %+v %v, want the account's reply", d, err)
	}
}

// A new follower gets the account's welcome, not the employees' help; a menu
// click gets the account's answer for its key, configured per account.
func TestE2EOfficialAccountWelcome(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	d, err := e.sim.SendEvent(ctx, "service", "oNewFollower1", schemas.EventData{Event: "subscribe"})
	if err != nil || d.ReplyContent != mpreply.DefaultWelcome {
		t.Fatalf("subscribe answered %+v %v, want the account's welcome", d, err)
	}

	e = startE2E(t, hubtest.WithConfig(func(c *config.Config) {
		if c.Connectors == nil {
			c.Connectors = map[string]yaml.Node{}
		}
		c.Connectors["mpreply"] = hub.Section(mpreply.Config{Accounts: map[string]mpreply.Account{
			"service": {Welcome: "欢迎来到示例商城", Menu: map[string]string{"HOURS": "营业时间 9:00-18:00"}}}})
	}))
	if d, err = e.sim.SendEvent(ctx, "service", "oNewFollower2", schemas.EventData{Event: "subscribe"}); err != nil || d.ReplyContent != "欢迎来到示例商城" {
		t.Fatalf("subscribe answered %+v %v, want the configured welcome", d, err)
	}
	if d, err = e.sim.SendEvent(ctx, "service", "oNewFollower2", schemas.EventData{Event: "CLICK", EventKey: "HOURS"}); err != nil || d.ReplyContent != "营业时间 9:00-18:00" {
		t.Fatalf("menu click answered %+v %v", d, err)
	}
}

// waitSenderDone waits until the sender has acked everything on WXHUB_OUT.
func waitSenderDone(t *testing.T, ctx context.Context, e *e2e) {
	t.Helper()
	for {
		c, err := e.bus.JS().Consumer(ctx, bus.StreamOut, sender.DefaultConsumer)
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the sender did not finish WXHUB_OUT")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A reply to a customer outside the 48-hour window is dead-lettered with
// WeChat's reason, and the status says to use a template message.
func TestE2EOfficialAccountOutsideWindow(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	openid := sim.DemoOpenIDs[1] // follows the account, has not written since the simulator started
	body, _ := json.Marshal(map[string]any{"touser": openid, "msgtype": "text", "text": map[string]string{"content": "您的订单已发货"}})
	out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: "mp-late-1", Source: "test", Type: "wxhub.out.message",
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: "service", Kind: schemas.KindMessage, Body: body}}
	if _, err := e.bus.PublishJSON(ctx, bus.OutSubject("service"), out.ID, schemas.SchemaOutbound, out); err != nil {
		t.Fatal(err)
	}
	kv, err := e.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	store := sender.NewStatusStore(kv)
	var st schemas.MessageStatus
	for st.Status != schemas.StatusFailed {
		select {
		case <-ctx.Done():
			t.Fatalf("status %+v, want failed", st)
		case <-time.After(20 * time.Millisecond):
		}
		st, _ = store.Get(context.Background(), out.ID)
	}
	if !strings.Contains(st.Reason, "45015") || !strings.Contains(st.Reason, "template message") {
		t.Errorf("reason %q", st.Reason)
	}
	// The template message reaches the same customer.
	body, _ = json.Marshal(map[string]any{"touser": openid, "template_id": sim.DemoTemplateShipped,
		"data": map[string]any{"first": map[string]string{"value": "您的订单已发货"}, "keyword1": map[string]string{"value": "1001"},
			"keyword2": map[string]string{"value": "顺丰"}, "remark": map[string]string{"value": ""}}})
	out.ID, out.Type, out.Data.Kind, out.Data.Body = "mp-tpl-1", "wxhub.out.mp_template", schemas.KindMPTemplate, body
	if _, err := e.bus.PublishJSON(ctx, bus.OutSubject("service"), out.ID, schemas.SchemaOutbound, out); err != nil {
		t.Fatal(err)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == openid })
	if err != nil || m.API != "message/template/send" {
		t.Fatalf("sent %+v %v", m, err)
	}
}
