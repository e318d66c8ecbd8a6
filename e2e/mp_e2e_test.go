package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// A customer writes to the demo Official Account; the unmatched text is
// answered with the help text as a customer-service message (message/custom/send).
func TestE2EOfficialAccountGetsHelpReply(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	openid := sim.DemoOpenIDs[0]
	d, err := e.sim.Say(ctx, "service", openid, "你好")
	if err != nil || d.Status != 200 {
		t.Fatalf("say: %+v %v", d, err)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == openid })
	if err != nil {
		t.Fatal(err)
	}
	if m.API != "message/custom/send" || m.App != "service" || m.MsgType != "text" || !strings.Contains(m.Content, "免打扰") {
		t.Errorf("reply = %+v, want the help text through message/custom/send", m)
	}
	if n := e.sim.GetTokenCalls("service"); n != 1 {
		t.Errorf("token calls for the account = %d, want 1", n)
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
