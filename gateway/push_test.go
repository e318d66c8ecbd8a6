package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

func (e *env) push(t *testing.T, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/messages", bytes.NewBufferString(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("status %d, body %q is not JSON", resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func TestPushAPI(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name      string
		key, body string
		want      int
		wantField string
	}{
		{"text by app", apiKey, `{"app":"helpdesk","touser":"zhangsan","msgtype":"text","text":{"content":"审批通过"}}`, 202, ""},
		{"agentid as string", apiKey, `{"agentid":"1000002","touser":"zhangsan","msgtype":"text","text":{"content":"x"},"priority":"urgent"}`, 202, ""},
		{"appchat", apiKey, `{"app":"helpdesk","chatid":"incident1","msgtype":"markdown","markdown":{"content":"**down**"}}`, 202, ""},
		{"no key", "", `{"app":"helpdesk","touser":"a","msgtype":"text","text":{"content":"x"}}`, 401, ""},
		{"wrong key", "nope-nope-nope", `{"app":"helpdesk","touser":"a","msgtype":"text","text":{"content":"x"}}`, 401, ""},
		{"app outside scope", apiKey, `{"app":"hr","touser":"a","msgtype":"text","text":{"content":"x"}}`, 403, "app"},
		{"missing content", apiKey, `{"app":"helpdesk","touser":"a","msgtype":"text","text":{}}`, 400, "text.content"},
		{"unknown app", apiKey, `{"app":"ghost","touser":"a","msgtype":"text","text":{"content":"x"}}`, 400, "app"},
		{"agentid mismatch", apiKey, `{"app":"helpdesk","agentid":1000003,"touser":"a","msgtype":"text","text":{"content":"x"}}`, 400, "agentid"},
		{"bad priority", apiKey, `{"app":"helpdesk","touser":"a","msgtype":"text","text":{"content":"x"},"priority":"now"}`, 400, "priority"},
		{"not json", apiKey, `{"app":`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.push(t, tt.key, tt.body)
			if status != tt.want {
				t.Fatalf("status %d (%v), want %d", status, body, tt.want)
			}
			if tt.wantField != "" && body["field"] != tt.wantField {
				t.Errorf("field %v, want %q (%v)", body["field"], tt.wantField, body)
			}
			if status == 202 && (body["status"] != "queued" || body["id"] == "") {
				t.Errorf("body %v", body)
			}
		})
	}
	if n := e.streamMsgs(t, bus.StreamOut); n != 3 {
		t.Fatalf("WXHUB_OUT has %d, want 3", n)
	}
	s, _ := e.bus.JS().Stream(context.Background(), bus.StreamOut)
	raw, _ := s.GetMsg(context.Background(), 1)
	var out schemas.Outbound
	json.Unmarshal(raw.Data, &out)
	var wecomBody map[string]any
	json.Unmarshal(out.Data.Body, &wecomBody)
	if out.Data.App != "helpdesk" || out.Data.Kind != schemas.KindMessage || wecomBody["app"] != nil || wecomBody["touser"] != "zhangsan" {
		t.Errorf("outbound %+v body %v", out.Data, wecomBody)
	}
}

func TestPushDedupKeyAndStatus(t *testing.T) {
	e := newEnv(t)
	body := `{"app":"helpdesk","touser":"zhangsan","msgtype":"text","text":{"content":"x"},"dedup_key":"payslip-2026-11-zhangsan"}`
	_, first := e.push(t, apiKey, body)
	_, second := e.push(t, apiKey, body)
	if first["id"] != second["id"] {
		t.Fatalf("dedup_key gave two ids: %v %v", first, second)
	}
	if n := e.streamMsgs(t, bus.StreamOut); n != 1 {
		t.Fatalf("WXHUB_OUT has %d, want 1", n)
	}
	id := first["id"].(string)
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/messages/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if status, st := doJSON(t, req); status != 200 || st["status"] != "queued" || st["app"] != "helpdesk" {
		t.Fatalf("status %d %v", status, st)
	}
	// Unknown ids and no key.
	req, _ = http.NewRequest("GET", e.srv.URL+"/api/v1/messages/nope", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if status, _ := doJSON(t, req); status != 404 {
		t.Fatalf("unknown id: %d", status)
	}
	req, _ = http.NewRequest("GET", e.srv.URL+"/api/v1/messages/"+id, nil)
	if status, _ := doJSON(t, req); status != 401 {
		t.Fatalf("no key: %d", status)
	}
}

func TestDropInWeComEndpoints(t *testing.T) {
	e := newEnv(t)
	get := func(q string) map[string]any {
		req, _ := http.NewRequest("GET", e.srv.URL+"/cgi-bin/gettoken?"+q, nil)
		_, m := doJSON(t, req)
		return m
	}
	if m := get("corpid=" + corpID + "&corpsecret=wrong-secret"); m["errcode"] != float64(40001) {
		t.Fatalf("wrong secret: %v", m)
	}
	if m := get("corpid=wwother&corpsecret=" + apiKey); m["errcode"] != float64(40013) {
		t.Fatalf("wrong corp: %v", m)
	}
	tok := get("corpid=" + corpID + "&corpsecret=" + apiKey)
	again := get("corpid=" + corpID + "&corpsecret=" + apiKey)
	if tok["errcode"] != float64(0) || tok["access_token"] == "" || tok["access_token"] != again["access_token"] {
		t.Fatalf("gettoken: %v / %v", tok, again)
	}
	send := func(token, body string) map[string]any {
		req, _ := http.NewRequest("POST", e.srv.URL+"/cgi-bin/message/send?access_token="+token, bytes.NewBufferString(body))
		_, m := doJSON(t, req)
		return m
	}
	at := tok["access_token"].(string)
	if m := send(at, `{"agentid":"1000002","touser":"zhangsan","msgtype":"text","text":{"content":"hello"}}`); m["errcode"] != float64(0) || m["msgid"] == "" {
		t.Fatalf("send: %v", m)
	}
	if m := send(at, `{"agentid":1000003,"touser":"zhangsan","msgtype":"text","text":{"content":"hello"}}`); m["errcode"] != float64(60011) {
		t.Fatalf("app out of scope: %v", m)
	}
	if m := send(at, `{"agentid":1000002,"touser":"zhangsan","msgtype":"text"}`); m["errcode"] != float64(40008) {
		t.Fatalf("invalid body: %v", m)
	}
	if m := send("forged", `{}`); m["errcode"] != float64(40014) {
		t.Fatalf("forged token: %v", m)
	}
	if m := send(at[:len(at)-2]+"00", `{}`); m["errcode"] != float64(40014) {
		t.Fatalf("tampered token: %v", m)
	}
	e.now.Add(int64(7201 * time.Second))
	if m := send(at, `{"agentid":1000002,"touser":"zhangsan","msgtype":"text","text":{"content":"hello"}}`); m["errcode"] != float64(42001) {
		t.Fatalf("expired token: %v", m)
	}
	if m := get("corpid=" + corpID + "&corpsecret=" + apiKey); m["access_token"] == at {
		t.Fatalf("a new window must give a new token")
	}
}

func TestCreateChat(t *testing.T) {
	e := newEnv(t)
	post := func(key, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/chats", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+key)
		return doJSON(t, req)
	}
	status, acc := post(apiKey, `{"app":"helpdesk","name":"故障 42","owner":"zhangsan","userlist":["zhangsan","lisi"],
		"dedup_key":"incident-42","message":{"msgtype":"text","text":{"content":"数据库主库宕机"}}}`)
	if status != 202 || acc["chatid"] == "" || acc["message_id"] == "" {
		t.Fatalf("status %d %v", status, acc)
	}
	_, again := post(apiKey, `{"app":"helpdesk","userlist":["zhangsan","lisi"],"dedup_key":"incident-42"}`)
	if again["chatid"] != acc["chatid"] || again["id"] != acc["id"] {
		t.Fatalf("dedup: %v vs %v", again, acc)
	}
	if n := e.streamMsgs(t, bus.StreamOut); n != 2 {
		t.Fatalf("WXHUB_OUT has %d, want create + first message", n)
	}
	s, _ := e.bus.JS().Stream(context.Background(), bus.StreamOut)
	first, _ := s.GetMsg(context.Background(), 1)
	second, _ := s.GetMsg(context.Background(), 2)
	var create, send schemas.Outbound
	json.Unmarshal(first.Data, &create)
	json.Unmarshal(second.Data, &send)
	if create.Data.Kind != schemas.KindChatCreate || send.Data.Kind != schemas.KindAppChat || create.Data.Priority != schemas.PriorityUrgent {
		t.Fatalf("kinds %q %q", create.Data.Kind, send.Data.Kind)
	}
	var sendBody map[string]any
	json.Unmarshal(send.Data.Body, &sendBody)
	if sendBody["chatid"] != acc["chatid"] {
		t.Fatalf("first message goes to %v, want %v", sendBody["chatid"], acc["chatid"])
	}
	for _, tt := range []struct{ body, field string }{
		{`{"app":"helpdesk","userlist":["zhangsan"]}`, "userlist"},
		{`{"app":"helpdesk","userlist":["a","b"],"owner":"c"}`, "owner"},
		{`{"app":"helpdesk","userlist":["a","b"],"chatid":"bad id!"}`, "chatid"},
		{`{"userlist":["a","b"]}`, "app"},
	} {
		if status, body := post(apiKey, tt.body); status != 400 || body["field"] != tt.field {
			t.Errorf("%s: %d %v, want 400 on %s", tt.body, status, body, tt.field)
		}
	}
	if status, _ := post(apiKey, `{"app":"hr","userlist":["a","b"]}`); status != 403 {
		t.Errorf("app out of scope: %d", status)
	}
}
