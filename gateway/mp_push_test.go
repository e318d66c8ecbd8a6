package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

const mpAppID = "wx5823bf96d3bd56c7"

func mpConfig() *gateway.Config {
	cfg := testConfig()
	cfg.MP.Accounts = []wecom.AccountConfig{{Name: "service", AppID: mpAppID, Secret: "s", Token: token, EncodingAESKey: aesKey}}
	cfg.API.Keys = append(cfg.API.Keys, gateway.APIKey{Name: "crm", Key: "crm-key-123456", Apps: []string{"service"}})
	return cfg
}

// interact plays an Official Account follower's text message to the gateway.
func (e *env) interact(t *testing.T, openid string, at time.Time) {
	t.Helper()
	cr, _ := wecom.NewCrypter(token, aesKey, mpAppID)
	x, err := wecom.BuildInbound(schemas.EventData{ToUser: "gh_1", User: openid, CreateTime: at.Unix(), MsgType: "text",
		Content: "你好", MsgID: strings.ReplaceAll(at.Format("150405.000"), ".", "")})
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.post(t, "/mp/service/callback", cr, x, at); resp.StatusCode != 200 {
		t.Fatalf("callback: status %d", resp.StatusCode)
	}
}

func lastOut(t *testing.T, e *env) (string, schemas.Outbound) {
	t.Helper()
	s, err := e.bus.JS().Stream(context.Background(), bus.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(context.Background(), bus.SubjectOutAll)
	if err != nil {
		t.Fatal(err)
	}
	var out schemas.Outbound
	json.Unmarshal(raw.Data, &out)
	return raw.Subject, out
}

func TestPushToOfficialAccount(t *testing.T) {
	e := startEnv(t, mpConfig())
	const crm = "crm-key-123456"
	text := `{"account":"service","touser":"oFresh","msgtype":"text","text":{"content":"您的订单已发货"}}`
	template := `{"account":"service","touser":"oNever","template_id":"tpl_ship","url":"https://shop.example/o/1",
		"data":{"first":{"value":"订单已发货","color":"#173177"},"keyword1":{"value":"1001"}}}`

	// No interaction yet: a customer-service message is refused, naming the fallback.
	status, body := e.push(t, crm, text)
	if status != http.StatusConflict || body["field"] != "touser" || !strings.Contains(body["error"].(string), "template message") {
		t.Fatalf("outside the window: %d %v", status, body)
	}
	e.interact(t, "oFresh", fixedNow)
	if status, body = e.push(t, crm, text); status != 202 {
		t.Fatalf("inside the window: %d %v", status, body)
	}
	subj, out := lastOut(t, e)
	if subj != bus.OutSubject("service") || out.Data.App != "service" || out.Data.Kind != schemas.KindMessage ||
		strings.Contains(string(out.Data.Body), "account") {
		t.Fatalf("queued %s %+v %s", subj, out.Data, out.Data.Body)
	}
	// A template message needs no window.
	if status, body = e.push(t, crm, template); status != 202 {
		t.Fatalf("template: %d %v", status, body)
	}
	if _, out = lastOut(t, e); out.Data.Kind != schemas.KindMPTemplate || !strings.Contains(string(out.Data.Body), `"template_id":"tpl_ship"`) {
		t.Fatalf("template queued as %+v %s", out.Data, out.Data.Body)
	}
	// 48 hours later the window is closed again.
	e.now.Store(fixedNow.Add(48*time.Hour + time.Second).UnixNano())
	if status, body = e.push(t, crm, text); status != http.StatusConflict || !strings.Contains(body["error"].(string), "last interaction") {
		t.Fatalf("after 48 h: %d %v", status, body)
	}
	e.now.Store(fixedNow.UnixNano())

	tests := []struct {
		name, key, body string
		want            int
		wantField       string
	}{
		{"unknown account", crm, `{"account":"ghost","touser":"o","msgtype":"text","text":{"content":"x"}}`, 400, "account"},
		{"key without the account", apiKey, text, 403, "account"},
		{"account and app", crm, `{"account":"service","app":"helpdesk","touser":"o","msgtype":"text","text":{"content":"x"}}`, 400, "app"},
		{"several openids", crm, `{"account":"service","touser":"a|b","msgtype":"text","text":{"content":"x"}}`, 400, "touser"},
		{"toparty", crm, `{"account":"service","touser":"oFresh","toparty":"2","msgtype":"text","text":{"content":"x"}}`, 400, "toparty"},
		{"wecom-only msgtype", crm, `{"account":"service","touser":"oFresh","msgtype":"file","file":{"media_id":"m"}}`, 400, "file"},
		{"news of two articles", crm, `{"account":"service","touser":"oFresh","msgtype":"news","news":{"articles":[{"title":"a"},{"title":"b"}]}}`, 400, "news.articles"},
		{"template without data", crm, `{"account":"service","touser":"o","template_id":"t"}`, 400, "data"},
		{"template value not a string", crm, `{"account":"service","touser":"o","template_id":"t","data":{"first":{"value":1}}}`, 400, "data.first.value"},
		{"template miniprogram without appid", crm, `{"account":"service","touser":"o","template_id":"t","data":{"first":{"value":"x"}},"miniprogram":{"pagepath":"p"}}`, 400, "miniprogram"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.push(t, tt.key, tt.body)
			if status != tt.want || !strings.HasPrefix(body["field"].(string), tt.wantField) {
				t.Fatalf("%d %v, want %d on %s", status, body, tt.want, tt.wantField)
			}
		})
	}
}

func TestOfficialAccountDropIn(t *testing.T) {
	e := startEnv(t, mpConfig())
	get := func(q url.Values) map[string]any {
		req, _ := http.NewRequest("GET", e.srv.URL+"/cgi-bin/token?"+q.Encode(), nil)
		_, m := doJSON(t, req)
		return m
	}
	if m := get(url.Values{"grant_type": {"client_credential"}, "appid": {mpAppID}, "secret": {"wrong-secret-1"}}); m["errcode"] != 40125.0 {
		t.Fatalf("wrong secret: %v", m)
	}
	if m := get(url.Values{"grant_type": {"client_credential"}, "appid": {mpAppID}, "secret": {apiKey}}); m["errcode"] != 48001.0 {
		t.Fatalf("key without the account: %v", m)
	}
	tok := get(url.Values{"grant_type": {"client_credential"}, "appid": {mpAppID}, "secret": {"crm-key-123456"}})
	access, _ := tok["access_token"].(string)
	if access == "" || tok["expires_in"] == nil || tok["errcode"] != nil {
		t.Fatalf("token answer %v", tok)
	}
	send := func(api, access, body string) map[string]any {
		req, _ := http.NewRequest("POST", e.srv.URL+"/cgi-bin/message/"+api+"/send?access_token="+access, bytes.NewBufferString(body))
		_, m := doJSON(t, req)
		return m
	}
	custom := `{"touser":"oDrop","msgtype":"text","text":{"content":"hi"}}`
	if m := send("custom", access, custom); m["errcode"] != 45015.0 {
		t.Fatalf("outside the window: %v", m)
	}
	e.interact(t, "oDrop", fixedNow)
	if m := send("custom", access, custom); m["errcode"] != 0.0 {
		t.Fatalf("custom: %v", m)
	}
	m := send("template", access, `{"touser":"oDrop","template_id":"tpl","data":{"first":{"value":"x"}}}`)
	if m["errcode"] != 0.0 || m["msgid"] == nil {
		t.Fatalf("template: %v", m)
	}
	if m := send("template", access, `{"touser":"oDrop","template_id":"tpl","data":{"first":"x"}}`); m["errcode"] != 47003.0 {
		t.Fatalf("bad data: %v", m)
	}
	if m := send("custom", "wxm1.crm.service.1.bad", custom); m["errcode"] != 40001.0 {
		t.Fatalf("forged token: %v", m)
	}
	// The WeCom drop-in token is not an Official Account token.
	if m := send("custom", "wxh1.crm.1.x", custom); m["errcode"] != 40001.0 {
		t.Fatalf("wecom token: %v", m)
	}
	if n := e.streamMsgs(t, bus.StreamOut); n != 2 {
		t.Fatalf("WXHUB_OUT has %d, want 2", n)
	}
	// The interaction is recorded once per account and openid, in the bucket's one encoding.
	kv, _ := e.bus.MPWindowKV(context.Background())
	if _, err := kv.Get(context.Background(), bus.MPWindowKey("service", "oDrop")); err != nil {
		t.Fatalf("interaction record: %v", err)
	}
}

// A repeated dedup_key answers the first message's id and status even after
// the 48-hour window has closed, as for WeCom apps; a new key gets the 409.
func TestOfficialAccountDedupAfterWindow(t *testing.T) {
	e := startEnv(t, mpConfig())
	const crm = "crm-key-123456"
	withKey := func(k string) string {
		return `{"account":"service","touser":"oLate","msgtype":"text","text":{"content":"发货"},"dedup_key":"` + k + `"}`
	}
	e.interact(t, "oLate", fixedNow)
	status, first := e.push(t, crm, withKey("ship-1001"))
	if status != http.StatusAccepted || first["id"] == nil {
		t.Fatalf("inside the window: %d %v", status, first)
	}
	e.now.Store(fixedNow.Add(48*time.Hour + time.Second).UnixNano())
	t.Cleanup(func() { e.now.Store(fixedNow.UnixNano()) })
	status, again := e.push(t, crm, withKey("ship-1001"))
	if status != http.StatusAccepted || again["id"] != first["id"] || again["status"] != first["status"] {
		t.Fatalf("repeat after the window: %d %v, want 202 %v", status, again, first)
	}
	if status, body := e.push(t, crm, withKey("ship-1002")); status != http.StatusConflict {
		t.Fatalf("a new key after the window: %d %v, want 409", status, body)
	}
	if n := e.streamMsgs(t, bus.StreamOut); n != 1 {
		t.Fatalf("WXHUB_OUT has %d, want 1", n)
	}
}
