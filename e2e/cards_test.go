package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

const otherKey = "other-client-key"

func withOtherKey(c *config.Config) {
	c.API.Keys = append(c.API.Keys, gateway.APIKey{Name: "other", Key: otherKey, Apps: []string{"*"}})
}

// pollStatus reads GET /api/v1/messages/{id} until ok holds.
func pollStatus(t *testing.T, ctx context.Context, api *resty.Client, id string, what string, ok func(schemas.MessageStatus) bool) schemas.MessageStatus {
	t.Helper()
	for {
		var st schemas.MessageStatus
		resp, err := api.R().SetContext(ctx).SetResult(&st).Get("/api/v1/messages/" + id)
		if err == nil && resp.StatusCode() == http.StatusOK && ok(st) {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: last %+v (%v)", what, st, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func countUpdates(s *sim.Server, content string) map[string]int {
	n := map[string]int{}
	for _, m := range s.Sent() {
		if m.API == "message/update_template_card" && m.Content == content {
			n[m.User]++
		}
	}
	return n
}

// A pushed card: clicked in WeCom, the click shows in its status; updated for
// everyone, then for one member; recalled; another client sees none of it.
func TestE2ECardClickUpdateRecall(t *testing.T) {
	e := startE2E(t, withConfig(withOtherKey))
	ctx := waitCtx(t, 60*time.Second)
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	other := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(otherKey)

	var acc struct{ ID string }
	resp, err := api.R().SetContext(ctx).SetResult(&acc).SetBody(map[string]any{
		"app": "helpdesk", "touser": "zhangsan|lisi", "msgtype": "template_card",
		"template_card": map[string]any{"card_type": "button_interaction", "task_id": "e2e-claim-1",
			"main_title": map[string]any{"title": "新工单"}, "button_list": []any{map[string]any{"text": "认领", "key": "claim"}}},
	}).Post("/api/v1/messages")
	if err != nil || resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("push: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	st := pollStatus(t, ctx, api, acc.ID, "sent", func(s schemas.MessageStatus) bool { return s.Status == schemas.StatusSent })
	if st.TaskID != "e2e-claim-1" || st.ResponseCode == "" || st.SentAt == nil || st.ToUser != "zhangsan|lisi" {
		t.Fatalf("sent status = %+v", st)
	}
	card, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "lisi" && m.MsgType == "template_card" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.ClickCard(ctx, "helpdesk", "lisi", card, "claim"); err != nil {
		t.Fatal(err)
	}
	st = pollStatus(t, ctx, api, acc.ID, "click", func(s schemas.MessageStatus) bool { return len(s.Clicks) == 1 })
	if c := st.Clicks[0]; c.User != "lisi" || c.Key != "claim" || c.ResponseCode == "" {
		t.Fatalf("click = %+v", c)
	}

	// Another client: the message does not exist for it.
	for _, r := range []*resty.Request{
		other.R().SetContext(ctx),
	} {
		if resp, _ := r.Get("/api/v1/messages/" + acc.ID); resp.StatusCode() != http.StatusNotFound {
			t.Fatalf("other key GET: %d", resp.StatusCode())
		}
	}
	if resp, _ := other.R().SetContext(ctx).SetBody(map[string]any{"button": map[string]any{"replace_name": "x"}}).Post("/api/v1/messages/" + acc.ID + "/card"); resp.StatusCode() != http.StatusNotFound {
		t.Fatalf("other key card update: %d %s", resp.StatusCode(), resp.Body())
	}
	if resp, _ := other.R().SetContext(ctx).Delete("/api/v1/messages/" + acc.ID); resp.StatusCode() != http.StatusNotFound {
		t.Fatalf("other key recall: %d %s", resp.StatusCode(), resp.Body())
	}

	// Update for everyone: the click's code, the newest.
	update := func(body map[string]any) *resty.Response {
		t.Helper()
		resp, err := api.R().SetContext(ctx).SetBody(body).Post("/api/v1/messages/" + acc.ID + "/card")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := update(map[string]any{"button": map[string]any{"replace_name": "已认领"}}); resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("update: %d %s", resp.StatusCode(), resp.Body())
	}
	if _, err := e.sim.WaitSent(ctx, func(sim.SentMessage) bool {
		n := countUpdates(e.sim, "已认领")
		return n["zhangsan"] == 1 && n["lisi"] == 1
	}); err != nil {
		t.Fatalf("card not updated for both: %v", countUpdates(e.sim, "已认领"))
	}
	// For one member: the send's code is still unused.
	if resp := update(map[string]any{"userids": []string{"zhangsan"}, "button": map[string]any{"replace_name": "张三已处理"}}); resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("update one: %d %s", resp.StatusCode(), resp.Body())
	}
	if _, err := e.sim.WaitSent(ctx, func(sim.SentMessage) bool { return countUpdates(e.sim, "张三已处理")["zhangsan"] == 1 }); err != nil {
		t.Fatal(err)
	}
	if n := countUpdates(e.sim, "张三已处理"); n["lisi"] != 0 {
		t.Fatalf("lisi's card updated too: %v", n)
	}
	// Every code spent: a clear 409.
	if resp := update(map[string]any{"button": map[string]any{"replace_name": "again"}}); resp.StatusCode() != http.StatusConflict || !strings.Contains(string(resp.Body()), "response_code") {
		t.Fatalf("no code left: %d %s", resp.StatusCode(), resp.Body())
	}
	if resp := update(map[string]any{}); resp.StatusCode() != http.StatusBadRequest {
		t.Fatalf("empty update: %d %s", resp.StatusCode(), resp.Body())
	}
	if resp := update(map[string]any{"button": map[string]any{"replace_name": "x"}}); resp.StatusCode() == http.StatusAccepted {
		t.Fatal("accepted with no code")
	}
	resp, _ = api.R().SetContext(ctx).SetBody(map[string]any{"button": map[string]any{"replace_name": "x"}}).Post("/api/v1/messages/nope/card")
	if resp.StatusCode() != http.StatusNotFound {
		t.Fatalf("unknown id: %d", resp.StatusCode())
	}

	// Recall.
	if resp, err := api.R().SetContext(ctx).Delete("/api/v1/messages/" + acc.ID); err != nil || resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("recall: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	pollStatus(t, ctx, api, acc.ID, "recalled", func(s schemas.MessageStatus) bool { return s.Status == schemas.StatusRecalled })
	if _, ok := e.sim.Recalled(card.MsgID); !ok {
		t.Fatal("not recalled at WeCom")
	}
	if resp := update(map[string]any{"button": map[string]any{"replace_name": "x"}}); resp.StatusCode() != http.StatusConflict {
		t.Fatalf("update after recall: %d", resp.StatusCode())
	}
}

// A text is not a card (409); a message sent more than 24 hours ago is not recalled (410).
func TestE2ERecallAndUpdateRefused(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 30*time.Second)
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	kv, err := e.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	old, older := time.Now().Add(-25*time.Hour), time.Now().Add(-73*time.Hour)
	for _, st := range []schemas.MessageStatus{
		{ID: "old-1", App: "helpdesk", Client: "erp", Status: schemas.StatusSent, WeComMsgID: "w1", SentAt: &old, MsgType: "template_card", ResponseCode: "rc", TaskID: "t"},
		{ID: "old-2", App: "helpdesk", Client: "erp", Status: schemas.StatusSent, WeComMsgID: "w3", SentAt: &older, MsgType: "template_card", ResponseCode: "rc", TaskID: "t"},
		{ID: "text-1", App: "helpdesk", Client: "erp", Status: schemas.StatusSent, WeComMsgID: "w2", MsgType: "text"},
	} {
		data, _ := json.Marshal(st)
		if _, err := kv.Put(ctx, bus.StatusKey(st.ID), data); err != nil {
			t.Fatal(err)
		}
	}
	resp, _ := api.R().SetContext(ctx).Delete("/api/v1/messages/old-1")
	if resp.StatusCode() != http.StatusGone || !strings.Contains(string(resp.Body()), "24 hours") {
		t.Fatalf("old recall: %d %s", resp.StatusCode(), resp.Body())
	}
	upd := map[string]any{"button": map[string]any{"replace_name": "x"}}
	if resp, _ = api.R().SetContext(ctx).SetBody(upd).Post("/api/v1/messages/text-1/card"); resp.StatusCode() != http.StatusConflict || !strings.Contains(string(resp.Body()), "not a template card") {
		t.Fatalf("text update: %d %s", resp.StatusCode(), resp.Body())
	}
	if resp, _ = api.R().SetContext(ctx).SetBody(upd).Post("/api/v1/messages/old-2/card"); resp.StatusCode() != http.StatusGone || !strings.Contains(string(resp.Body()), "72 hours") {
		t.Fatalf("old card update: %d %s", resp.StatusCode(), resp.Body())
	}
}

// The WeCom drop-in: a card sent through /cgi-bin/message/send is updated
// with the response_code it answered, then recalled with its msgid.
func TestE2EDropInCardUpdateAndRecall(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 30*time.Second)
	c := resty.New().SetBaseURL("http://" + e.hubAddr)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := c.R().SetContext(ctx).SetResult(&tok).Get("/cgi-bin/gettoken?corpid=" + e.cfg.WeCom.CorpID + "&corpsecret=" + hub.DemoAPIKey); err != nil || tok.AccessToken == "" {
		t.Fatalf("gettoken: %v", err)
	}
	var sent struct {
		ErrCode      int    `json:"errcode"`
		MsgID        string `json:"msgid"`
		ResponseCode string `json:"response_code"`
	}
	_, err := c.R().SetContext(ctx).SetResult(&sent).SetBody(map[string]any{
		"touser": "wangwu", "msgtype": "template_card", "agentid": 1000002,
		"template_card": map[string]any{"card_type": "button_interaction", "task_id": "dropin-1",
			"main_title": map[string]any{"title": "审批"}, "button_list": []any{map[string]any{"text": "同意", "key": "ok"}}},
	}).Post("/cgi-bin/message/send?access_token=" + tok.AccessToken)
	if err != nil || sent.ErrCode != 0 || sent.ResponseCode == "" {
		t.Fatalf("drop-in send: %v %+v", err, sent)
	}
	card, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "wangwu" && m.MsgType == "template_card" })
	if err != nil {
		t.Fatal(err)
	}
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	pollStatus(t, ctx, api, sent.MsgID, "sent", func(s schemas.MessageStatus) bool { return s.Status == schemas.StatusSent })
	var ans struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	_, err = c.R().SetContext(ctx).SetResult(&ans).SetBody(map[string]any{"agentid": 1000002, "atall": 1,
		"response_code": sent.ResponseCode, "button": map[string]any{"replace_name": "已同意"}}).
		Post("/cgi-bin/message/update_template_card?access_token=" + tok.AccessToken)
	if err != nil || ans.ErrCode != 0 {
		t.Fatalf("drop-in update: %v %+v", err, ans)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool {
		return m.API == "message/update_template_card" && m.User == "wangwu" && m.Content == "已同意"
	}); err != nil {
		t.Fatal(err)
	}
	_, err = c.R().SetContext(ctx).SetResult(&ans).SetBody(map[string]any{"msgid": sent.MsgID}).
		Post("/cgi-bin/message/recall?access_token=" + tok.AccessToken)
	if err != nil || ans.ErrCode != 0 {
		t.Fatalf("drop-in recall: %v %+v", err, ans)
	}
	pollStatus(t, ctx, api, sent.MsgID, "recalled", func(s schemas.MessageStatus) bool { return s.Status == schemas.StatusRecalled })
	if _, ok := e.sim.Recalled(card.MsgID); !ok {
		t.Fatal("not recalled at WeCom")
	}
	_, _ = c.R().SetContext(ctx).SetResult(&ans).SetBody(map[string]any{"msgid": "unknown"}).
		Post("/cgi-bin/message/recall?access_token=" + tok.AccessToken)
	if ans.ErrCode != 40058 {
		t.Fatalf("unknown msgid: %+v", ans)
	}
}
