package sender_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

const (
	mpAccount = "service"
	openID    = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M" // talks to the account in the tests
	quietID   = "oK3Hq5yVJpZ1n8Wd4xR2sT7uLm9A" // follows, never interacted
)

// newMPHarness is newHarness with an Official Account beside the WeCom app,
// and company-wide quiet hours all day (which must not hold customers' replies).
func newMPHarness(t *testing.T) *harness {
	t.Helper()
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	b, err := bus.Open(context.Background(), bus.Config{DataDir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("success")) }))
	t.Cleanup(gw.Close)
	s, err := sim.New(sim.Config{
		GatewayURL: gw.URL,
		Apps:       []sim.App{{Name: testApp, AgentID: 1000002, Secret: "sekret"}},
		Accounts: []sim.Account{{Name: mpAccount, AppID: "wxappid0001", Secret: "mp-sekret", Token: "tok",
			EncodingAESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", Followers: []string{quietID}}},
		Users: []sim.User{{UserID: "boss", Name: "Boss", Department: []int64{1}}},
	}, sim.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cfg := sender.Config{
		CorpID: s.Config().CorpID,
		Apps: []sender.App{{Name: testApp, AgentID: 1000002, Secret: "sekret"},
			{Name: mpAccount, Kind: sender.AppKindMP, AppID: "wxappid0001", Secret: "mp-sekret"}},
		MPAPIBase:  s.URL(),
		QuietHours: "00:00-23:59",
		Retry:      sender.Retry{Base: 100 * time.Millisecond, Max: time.Second, MaxAttempts: 4},
	}
	snd, err := sender.New(cfg, b, wecom.NewClient(s.URL()), zap.NewNop(), sender.WithClock(clock), sender.WithRand(func() float64 { return 1 }))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, bus: b, sim: s, sender: snd, clock: clock}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Run(runCtx) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { stopRun(t, cancel, done) }) }
	t.Cleanup(h.stop)
	return h
}

func (h *harness) publishTo(id, app, kind string, body any) {
	h.t.Helper()
	raw, _ := json.Marshal(body)
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "test", Type: "wxhub.out." + kind,
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: app, Kind: kind, Body: raw},
	}
	if _, err := h.bus.PublishJSON(context.Background(), bus.OutSubject(app), id, schemas.SchemaOutbound, out); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitStatus(id, status string) schemas.MessageStatus {
	h.t.Helper()
	var st schemas.MessageStatus
	waitFor(h.t, 20*time.Second, id+" "+status, func() bool { st = h.status(id); return st.Status == status })
	return st
}

func mpText(to, content string) map[string]any {
	return map[string]any{"touser": to, "msgtype": "text", "text": map[string]string{"content": content}}
}

func TestMPSendThroughSimulator(t *testing.T) {
	h := newMPHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.sim.Say(ctx, mpAccount, openID, "你好"); err != nil {
		t.Fatal(err)
	}

	t.Run("text reply within the window, despite quiet hours", func(t *testing.T) {
		h.publishTo("r1", mpAccount, schemas.KindMessage, mpText(openID, "欢迎"))
		h.waitStatus("r1", schemas.StatusSent)
		m, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "欢迎" })
		if err != nil || m.API != "message/custom/send" || m.App != mpAccount || m.User != openID {
			t.Fatalf("sent %+v %v", m, err)
		}
		if strings.Contains(string(m.Body), "agentid") || strings.Contains(string(m.Body), "enable_duplicate_check") {
			t.Errorf("WeCom-only fields in the body: %s", m.Body)
		}
	})
	t.Run("markdown goes as text, textcard as news", func(t *testing.T) {
		h.publishTo("r2", mpAccount, "", map[string]any{"touser": openID, "msgtype": "markdown", "markdown": map[string]string{"content": "**订单** 1001"}})
		h.publishTo("r3", mpAccount, "", map[string]any{"touser": openID, "msgtype": "textcard",
			"textcard": map[string]string{"title": "订单 1001", "description": "已发货", "url": "https://example.com/o/1001"}})
		h.waitStatus("r2", schemas.StatusSent)
		h.waitStatus("r3", schemas.StatusSent)
		got := map[string]string{}
		for _, m := range h.sim.SentTo(openID) {
			got[m.Content] = m.MsgType
		}
		if got["**订单** 1001"] != "text" || got["订单 1001"] != "news" {
			t.Errorf("sent %v", got)
		}
	})
	t.Run("template message to a follower outside the window", func(t *testing.T) {
		h.publishTo("t1", mpAccount, schemas.KindMPTemplate, map[string]any{"touser": quietID, "template_id": "TPL-1",
			"data": map[string]any{"first": map[string]string{"value": "设计师已接单"}}})
		st := h.waitStatus("t1", schemas.StatusSent)
		m, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == quietID })
		if err != nil || m.API != "message/template/send" || st.WeComMsgID != m.MsgID || !strings.Contains(string(m.Body), `"client_msg_id":"t1"`) {
			t.Fatalf("sent %+v (status %+v) %v", m, st, err)
		}
	})
	t.Run("customer-service message outside the window fails with the reason", func(t *testing.T) {
		h.publishTo("late", mpAccount, schemas.KindMessage, mpText(quietID, "hello?"))
		st := h.waitStatus("late", schemas.StatusFailed)
		if !strings.Contains(st.Reason, "45015") || !strings.Contains(st.Reason, "use a template message") || st.Attempts != 1 {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("past the per-interaction cap", func(t *testing.T) {
		// r1-r3 used 3 of the 5 the interaction allows.
		for _, id := range []string{"c4", "c5", "c6"} {
			h.publishTo(id, mpAccount, schemas.KindMessage, mpText(openID, id))
			if id != "c6" {
				h.waitStatus(id, schemas.StatusSent)
			}
		}
		st := h.waitStatus("c6", schemas.StatusFailed)
		if !strings.Contains(st.Reason, "45047") || st.Attempts != 1 {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("token refresh on 42001 and on 40001", func(t *testing.T) {
		if _, err := h.sim.Say(ctx, mpAccount, openID, "again"); err != nil {
			t.Fatal(err)
		}
		before := h.sim.GetTokenCalls(mpAccount)
		h.sim.ExpireTokens()
		h.publishTo("x1", mpAccount, schemas.KindMessage, mpText(openID, "after expiry"))
		h.waitStatus("x1", schemas.StatusSent)
		h.sim.FailNextOn("message/custom/send", 1, 40001)
		h.publishTo("x2", mpAccount, schemas.KindMessage, mpText(openID, "after 40001"))
		h.waitStatus("x2", schemas.StatusSent)
		if n := h.sim.GetTokenCalls(mpAccount) - before; n != 2 {
			t.Errorf("token calls = %d, want 2 (one per rejected token)", n)
		}
		if h.sim.GetTokenCalls(testApp) != 0 {
			t.Errorf("the WeCom app's gettoken was called")
		}
	})
}

func TestMPBadInput(t *testing.T) {
	h := newMPHarness(t)
	tests := []struct {
		name, app, kind string
		body            any
		wantReason      string
	}{
		{"two openids", mpAccount, schemas.KindMessage, mpText(openID+"|"+quietID, "x"), "one openid"},
		{"no touser", mpAccount, schemas.KindMessage, map[string]any{"msgtype": "text", "text": map[string]string{"content": "x"}}, "data.body.touser: empty"},
		{"toparty", mpAccount, schemas.KindMessage, map[string]any{"touser": openID, "toparty": "1", "msgtype": "text"}, "toparty and totag"},
		{"WeCom card", mpAccount, schemas.KindMessage, map[string]any{"touser": openID, "msgtype": "template_card"}, "not a customer-service message type"},
		{"card update", mpAccount, schemas.KindCardUpdate, map[string]any{"response_code": "rc"}, "not available for Official Account"},
		{"template without template_id", mpAccount, schemas.KindMPTemplate, map[string]any{"touser": openID}, "template_id: empty"},
		{"template through a WeCom app", testApp, schemas.KindMPTemplate, map[string]any{"touser": "boss", "template_id": "T"}, "is for Official Accounts"},
		{"unknown account", "nosuch", schemas.KindMessage, mpText(openID, "x"), "neither a WeCom app nor an Official Account"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "bad" + string(rune('a'+i))
			h.publishTo(id, tt.app, tt.kind, tt.body)
			st := h.waitStatus(id, schemas.StatusFailed)
			if !strings.Contains(st.Reason, tt.wantReason) {
				t.Fatalf("reason %q, want it to say %q", st.Reason, tt.wantReason)
			}
		})
	}
	if n := h.sim.Stats().Calls["message/custom/send"] + h.sim.Stats().Calls["message/template/send"]; n != 0 {
		t.Errorf("%d calls made for bad input", n)
	}
}

// A template send whose answer is lost (WeChat took it) is retried with the
// same client_msg_id, the hub's message id: WeChat drops the repeat, so the
// customer sees one message and the status carries the first send's msgid.
func TestMPTemplateRetryAfterLostAnswer(t *testing.T) {
	h := newMPHarness(t)
	h.sim.LoseAnswerNextOn("message/template/send", 1)
	h.publishTo("tpl-lost", mpAccount, schemas.KindMPTemplate, map[string]any{"touser": quietID, "template_id": "TPL-1",
		"data": map[string]any{"first": map[string]string{"value": "设计师已接单"}}})
	var st schemas.MessageStatus
	waitFor(t, 20*time.Second, "the retry after the lost answer", func() bool {
		h.clock.(*sender.ManualClock).Advance(200 * time.Millisecond) // the retry's backoff
		st = h.status("tpl-lost")
		return st.Status == schemas.StatusSent
	})
	var sent []sim.SentMessage
	for _, m := range h.sim.SentTo(quietID) {
		if m.API == "message/template/send" {
			sent = append(sent, m)
		}
	}
	if len(sent) != 1 || !strings.Contains(string(sent[0].Body), `"client_msg_id":"tpl-lost"`) {
		t.Fatalf("shown %d template messages %+v, want 1 with client_msg_id tpl-lost", len(sent), sent)
	}
	if n := h.sim.Stats().Calls["message/template/send"]; n != 2 || st.WeComMsgID != sent[0].MsgID {
		t.Fatalf("template/send called %d times, status %+v: want 2 calls and msgid %s", n, st, sent[0].MsgID)
	}
}
