package sim_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom/sim"
)

func TestGetToken(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		given string
		want  int
	}{
		{"ok", "corpid=ww0123456789abcdef&corpsecret=helpdesk-demo-secret", 0},
		{"missing corpid", "corpsecret=helpdesk-demo-secret", sim.CodeMissingCorpID},
		{"wrong corpid", "corpid=wwnope&corpsecret=helpdesk-demo-secret", sim.CodeInvalidCorpID},
		{"missing secret", "corpid=ww0123456789abcdef", sim.CodeMissingSecret},
		{"wrong secret", "corpid=ww0123456789abcdef&corpsecret=nope", sim.CodeInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := e.call("GET", "/cgi-bin/gettoken?"+tt.given, nil)
			if got := code(out); got != tt.want {
				t.Fatalf("errcode = %d, want %d (%v)", got, tt.want, out)
			}
			if tt.want != 0 && !strings.Contains(out["errmsg"].(string), fmt.Sprint(tt.want)) {
				t.Errorf("errmsg %q does not name the code", out["errmsg"])
			}
		})
	}
}

func TestTokenLifetime(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	e.clock.Advance(time.Hour)
	out := e.call("GET", "/cgi-bin/gettoken?corpid=ww0123456789abcdef&corpsecret=helpdesk-demo-secret", nil)
	if out["access_token"] != tok || out["expires_in"].(float64) != 3600 {
		t.Fatalf("while valid, want the same token with 3600 s left, got %v", out)
	}
	if got := code(e.send(tok, text("zhangsan", "hi"))); got != 0 {
		t.Fatalf("send with valid token: %d", got)
	}
	e.clock.Advance(time.Hour)
	if got := code(e.send(tok, text("zhangsan", "hi"))); got != sim.CodeTokenExpired {
		t.Fatalf("expired token: errcode %d, want 42001", got)
	}
	tok2 := e.token()
	if tok2 == tok {
		t.Fatal("gettoken after expiry returned the expired token")
	}
	e.s.ExpireTokens()
	if got := code(e.send(tok2, text("zhangsan", "hi"))); got != sim.CodeTokenExpired {
		t.Fatalf("after ExpireTokens: errcode %d, want 42001", got)
	}
	if got := code(e.send("bogus", text("zhangsan", "hi"))); got != sim.CodeInvalidToken {
		t.Fatalf("bogus token: %d, want 40014", got)
	}
	if got := code(e.send("", text("zhangsan", "hi"))); got != sim.CodeMissingToken {
		t.Fatalf("no token: %d, want 41001", got)
	}
	if n := e.s.GetTokenCalls("helpdesk"); n != 3 {
		t.Fatalf("gettoken calls = %d, want 3", n)
	}
}

func TestMessageSendValidation(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	img := e.s.AddMedia("helpdesk", "image", "a.png", []byte("\x89PNG\r\n\x1a\nxxxx"))
	card := func(ct string) map[string]any {
		return map[string]any{"touser": "zhangsan", "msgtype": "template_card", "agentid": 1000002,
			"template_card": map[string]any{"card_type": ct, "task_id": "t1", "main_title": map[string]any{"title": "审批"},
				"button_list": []any{map[string]any{"text": "同意", "key": "ok"}}}}
	}
	tests := []struct {
		name  string
		given any
		want  int
		check func(t *testing.T, out map[string]any)
	}{
		{name: "text, numeric agentid", given: text("zhangsan", "你好"), want: 0},
		{name: "agentid as string", given: map[string]any{"touser": "lisi", "msgtype": "text", "agentid": "1000002", "text": map[string]any{"content": "x"}}, want: 0},
		{name: "missing agentid", given: map[string]any{"touser": "lisi", "msgtype": "text", "text": map[string]any{"content": "x"}}, want: sim.CodeMissingAgentID},
		{name: "unknown agentid", given: map[string]any{"touser": "lisi", "msgtype": "text", "agentid": 99, "text": map[string]any{"content": "x"}}, want: sim.CodeInvalidAgentID},
		{name: "agentid not a number", given: map[string]any{"touser": "lisi", "msgtype": "text", "agentid": "abc", "text": map[string]any{"content": "x"}}, want: sim.CodeInvalidAgentID},
		{name: "unknown msgtype", given: map[string]any{"touser": "lisi", "msgtype": "sms", "agentid": 1000002}, want: sim.CodeInvalidMsgType},
		{name: "empty content", given: text("lisi", " "), want: sim.CodeEmptyContent},
		{name: "missing text object", given: map[string]any{"touser": "lisi", "msgtype": "text", "agentid": 1000002}, want: sim.CodeEmptyContent},
		{name: "textcard without description", given: map[string]any{"touser": "lisi", "msgtype": "textcard", "agentid": 1000002, "textcard": map[string]any{"title": "t", "url": "http://x"}}, want: sim.CodeMissingDescription},
		{name: "news with 9 articles", given: map[string]any{"touser": "lisi", "msgtype": "news", "agentid": 1000002, "news": map[string]any{"articles": make([]any, 9)}}, want: sim.CodeTooManyArticles},
		{name: "image with unknown media", given: map[string]any{"touser": "lisi", "msgtype": "image", "agentid": 1000002, "image": map[string]any{"media_id": "nope"}}, want: sim.CodeInvalidMediaID},
		{name: "image with uploaded media", given: map[string]any{"touser": "lisi", "msgtype": "image", "agentid": 1000002, "image": map[string]any{"media_id": img}}, want: 0},
		{name: "file without media_id", given: map[string]any{"touser": "lisi", "msgtype": "file", "agentid": 1000002, "file": map[string]any{}}, want: sim.CodeMissingMediaID},
		{name: "bad json", given: "{not json", want: sim.CodeBadJSON},
		{name: "some users unknown", given: text("zhangsan|Nobody", "x"), want: 0, check: func(t *testing.T, out map[string]any) {
			if out["invaliduser"] != "nobody" {
				t.Errorf("invaliduser = %v, want nobody", out["invaliduser"])
			}
		}},
		{name: "all users unknown", given: text("nobody|ghost", "x"), want: sim.CodeAllInvalid},
		{name: "no recipient", given: text("", "x"), want: sim.CodeAllInvalid},
		{name: "bad card type", given: card("fancy"), want: sim.CodeInvalidParameter},
		{name: "button card answers response_code", given: card("button_interaction"), want: 0, check: func(t *testing.T, out map[string]any) {
			if out["response_code"] == nil || out["response_code"] == "" {
				t.Errorf("no response_code in %v", out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := e.send(tok, tt.given)
			if got := code(out); got != tt.want {
				t.Fatalf("errcode = %d, want %d (%v)", got, tt.want, out)
			}
			if tt.want == 0 && out["msgid"] == "" {
				t.Errorf("no msgid in %v", out)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
	if got := code(e.call("GET", "/cgi-bin/message/send?access_token="+tok, nil)); got != sim.CodeRequirePost {
		t.Errorf("GET message/send: %d, want 43002", got)
	}
}

func TestRecipients(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	tests := []struct {
		name string
		body map[string]any
		want []string
	}{
		{"@all", text("@all", "x"), []string{"lisi", "sunqi", "wangwu", "zhangsan", "zhaoliu", "zhouba"}},
		{"party", map[string]any{"toparty": "3", "msgtype": "text", "agentid": 1000002, "text": map[string]any{"content": "x"}}, []string{"lisi", "sunqi"}},
		{"tag and user, no duplicates", map[string]any{"touser": "ZhangSan", "totag": "1", "msgtype": "text", "agentid": 1000002, "text": map[string]any{"content": "x"}}, []string{"wangwu", "zhangsan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.s.Reset()
			if out := e.send(tok, tt.body); code(out) != 0 {
				t.Fatalf("send: %v", out)
			}
			var got []string
			for _, m := range e.s.Sent() {
				got = append(got, m.User)
			}
			if fmt.Sprint(sorted(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("delivered to %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMemberLimitDropsSilently(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	for i := 0; i < 31; i++ {
		if out := e.send(tok, text("zhangsan", fmt.Sprint("m", i))); code(out) != 0 {
			t.Fatalf("send %d: %v", i, out)
		}
		e.clock.Advance(time.Second)
	}
	if n := len(e.s.SentTo("zhangsan")); n != 30 {
		t.Fatalf("delivered %d, want 30", n)
	}
	d := e.s.Dropped()
	if len(d) != 1 || d[0].Reason != sim.DropMemberMinute || d[0].Content != "m30" {
		t.Fatalf("dropped = %+v", d)
	}
	// 31 s after the 31st send, the first 30 s of sends leave the 60 s window.
	e.clock.Advance(30 * time.Second)
	if out := e.send(tok, text("zhangsan", "later")); code(out) != 0 {
		t.Fatal(out)
	}
	if n := len(e.s.SentTo("zhangsan")); n != 31 {
		t.Fatalf("after the window slid: delivered %d, want 31", n)
	}
	if st := e.s.Stats(); st.Dropped[sim.DropMemberMinute] != 1 {
		t.Fatalf("stats.dropped = %v", st.Dropped)
	}
}

func TestMemberHourLimit(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.Limits.MemberPerHour = 3; c.Limits.MemberPerMinute = -1 })
	tok := e.token()
	for i := 0; i < 4; i++ {
		e.send(tok, text("lisi", "x"))
		e.clock.Advance(10 * time.Minute)
	}
	if d := e.s.Dropped(); len(d) != 1 || d[0].Reason != sim.DropMemberHour {
		t.Fatalf("dropped = %+v", d)
	}
}

func TestCorpAPICeiling(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.Limits.APIPerMinute = 3 })
	tok := e.token()
	for i := 0; i < 3; i++ {
		if out := e.send(tok, text("lisi", "x")); code(out) != 0 {
			t.Fatal(out)
		}
	}
	if out := e.send(tok, text("lisi", "x")); code(out) != sim.CodeFreqLimit {
		t.Fatalf("4th call: %v, want 45009", out)
	}
	e.clock.Advance(61 * time.Second)
	if out := e.send(tok, text("lisi", "x")); code(out) != 0 {
		t.Fatalf("after a minute: %v", out)
	}
}

func TestDailyRecipientQuota(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.Limits.AppDailyRecipients = 3 })
	tok := e.token()
	if out := e.send(tok, text("lisi|zhangsan", "x")); code(out) != 0 {
		t.Fatal(out)
	}
	if out := e.send(tok, text("lisi|zhangsan", "x")); code(out) != sim.CodeFreqLimit {
		t.Fatalf("past the quota: %v, want 45009", out)
	}
	e.clock.Advance(24 * time.Hour)
	tok = e.token()
	if out := e.send(tok, text("lisi|zhangsan", "x")); code(out) != 0 {
		t.Fatalf("next day: %v", out)
	}
}

func TestDuplicateCheck(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	body := text("lisi", "工资条已发放")
	body["enable_duplicate_check"] = 1
	body["duplicate_check_interval"] = 600
	first := e.send(tok, body)
	second := e.send(tok, body)
	if code(first) != 0 || code(second) != 0 || first["msgid"] != second["msgid"] {
		t.Fatalf("first %v, second %v: want both accepted with the same msgid", first, second)
	}
	if n := len(e.s.Sent()); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	if st := e.s.Stats(); st.Duplicates != 1 || st.Dropped[sim.DropDuplicate] != 1 {
		t.Fatalf("stats = %+v", st)
	}
	e.clock.Advance(601 * time.Second)
	e.send(tok, body)
	if n := len(e.s.Sent()); n != 2 {
		t.Fatalf("after the interval: delivered %d, want 2", n)
	}
}

func TestUpdateTemplateCard(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	out := e.send(tok, map[string]any{"touser": "zhangsan|lisi", "msgtype": "template_card", "agentid": 1000002,
		"template_card": map[string]any{"card_type": "button_interaction", "task_id": "claim-1",
			"main_title": map[string]any{"title": "新需求"}, "button_list": []any{map[string]any{"text": "认领", "key": "claim"}}}})
	rc, _ := out["response_code"].(string)
	if rc == "" {
		t.Fatalf("no response_code: %v", out)
	}
	upd := func(code string, agent any) map[string]any {
		return e.call("POST", "/cgi-bin/message/update_template_card?access_token="+tok, map[string]any{
			"userids": []string{"zhangsan"}, "agentid": agent, "response_code": code, "button": map[string]any{"replace_name": "已认领"}})
	}
	tests := []struct {
		name  string
		code  string
		agent any
		want  int
	}{
		{"unknown code", "nope", 1000002, sim.CodeInvalidParameter},
		{"missing agentid", rc, nil, sim.CodeMissingAgentID},
		{"first use", rc, 1000002, 0},
		{"second use", rc, 1000002, sim.CodeInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := upd(tt.code, tt.agent); code(got) != tt.want {
				t.Fatalf("errcode %v, want %d", got, tt.want)
			}
		})
	}
	var updates []sim.SentMessage
	for _, m := range e.s.Sent() {
		if m.API == "message/update_template_card" {
			updates = append(updates, m)
		}
	}
	if len(updates) != 1 || updates[0].User != "zhangsan" || updates[0].Content != "已认领" {
		t.Fatalf("updates = %+v", updates)
	}
	// A code from a click expires after 72 hours.
	rc2 := e.s.IssueResponseCode("helpdesk", "zhangsan")
	e.clock.Advance(73 * time.Hour)
	e.token()
	tok = e.token()
	if got := code(upd(rc2, 1000002)); got != sim.CodeInvalidParameter {
		t.Fatalf("expired code: %d", got)
	}
}

func TestAppChat(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	q := "?access_token=" + tok
	bad := []struct {
		name  string
		given map[string]any
		want  int
	}{
		{"one member", map[string]any{"userlist": []string{"zhangsan"}}, sim.CodeChatMemberCount},
		{"unknown member", map[string]any{"userlist": []string{"zhangsan", "ghost"}}, sim.CodeInvalidChatMember},
		{"bad chatid", map[string]any{"userlist": []string{"zhangsan", "lisi"}, "chatid": "a-b"}, sim.CodeInvalidChatID},
		{"bad owner", map[string]any{"userlist": []string{"zhangsan", "lisi"}, "owner": "ghost"}, sim.CodeInvalidChatOwner},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.call("POST", "/cgi-bin/appchat/create"+q, tt.given); code(got) != tt.want {
				t.Fatalf("%v, want %d", got, tt.want)
			}
		})
	}
	out := e.call("POST", "/cgi-bin/appchat/create"+q, map[string]any{"name": "项目群", "owner": "zhangsan", "userlist": []string{"zhangsan", "lisi", "wangwu"}})
	chatID, _ := out["chatid"].(string)
	if code(out) != 0 || chatID == "" {
		t.Fatalf("create: %v", out)
	}
	got := e.call("GET", "/cgi-bin/appchat/get"+q+"&chatid="+chatID, nil)
	info, _ := got["chat_info"].(map[string]any)
	if info["name"] != "项目群" || len(info["userlist"].([]any)) != 3 {
		t.Fatalf("get: %v", got)
	}
	if got := e.call("GET", "/cgi-bin/appchat/get"+q+"&chatid=nope", nil); code(got) != sim.CodeChatNotFound {
		t.Fatalf("get unknown: %v", got)
	}
	if got := e.call("POST", "/cgi-bin/appchat/send"+q, map[string]any{"chatid": chatID, "msgtype": "text", "text": map[string]any{"content": "开会"}}); code(got) != 0 {
		t.Fatalf("send: %v", got)
	}
	if got := e.call("POST", "/cgi-bin/appchat/send"+q, map[string]any{"chatid": chatID, "msgtype": "template_card"}); code(got) != sim.CodeInvalidMsgType {
		t.Fatalf("send card to chat: %v", got)
	}
	if n := len(e.s.Sent()); n != 3 {
		t.Fatalf("chat message delivered %d times, want 3", n)
	}
}

func upload(t *testing.T, e *env, tok, typ, field, name string, data []byte) map[string]any {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, _ := w.CreateFormFile(field, name)
	_, _ = fw.Write(data)
	_ = w.Close()
	resp, err := http.Post(e.base+"/cgi-bin/media/upload?access_token="+tok+"&type="+typ, w.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := jsonUnmarshal(raw, &out); err != nil {
		t.Fatalf("upload answer %q: %v", raw, err)
	}
	return out
}

func TestMediaUpload(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	pdf := []byte("%PDF-1.4 payslip")
	tests := []struct {
		name, typ, field string
		data             []byte
		want             int
	}{
		{"file", "file", "media", pdf, 0},
		{"bad type", "doc", "media", pdf, sim.CodeInvalidType},
		{"wrong field", "file", "upload", pdf, sim.CodeMissingMedia},
		{"too small", "file", "media", []byte("abc"), sim.CodeInvalidFileSize},
		{"empty", "file", "media", nil, sim.CodeEmptyMedia},
		{"voice too large", "voice", "media", make([]byte, 2<<20+1), sim.CodeMediaTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := upload(t, e, tok, tt.typ, tt.field, "工资条.pdf", tt.data)
			if code(out) != tt.want {
				t.Fatalf("%v, want %d", out, tt.want)
			}
			if tt.want != 0 {
				return
			}
			id := out["media_id"].(string)
			m, ok := e.s.MediaByID(id)
			if !ok || !bytes.Equal(m.Data, pdf) || m.Filename != "工资条.pdf" || out["type"] != "file" || out["created_at"] == "" {
				t.Fatalf("stored %+v for %v", m, out)
			}
			resp, err := http.Get(e.base + "/cgi-bin/media/get?access_token=" + tok + "&media_id=" + id)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, pdf) {
				t.Fatalf("media/get = %q", got)
			}
			if out := e.send(tok, map[string]any{"touser": "lisi", "msgtype": "file", "agentid": 1000002, "file": map[string]any{"media_id": id}}); code(out) != 0 {
				t.Fatalf("send file: %v", out)
			}
		})
	}
}

func TestOAuthAndUser(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	c, err := e.s.IssueOAuthCode("ZhangSan")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.IssueOAuthCode("ghost"); err == nil {
		t.Fatal("IssueOAuthCode(ghost): no error")
	}
	expired, _ := e.s.IssueOAuthCode("lisi")
	q := "/cgi-bin/auth/getuserinfo?access_token=" + tok + "&code="
	if out := e.call("GET", q+c, nil); code(out) != 0 || out["userid"] != "zhangsan" {
		t.Fatalf("getuserinfo: %v", out)
	}
	if out := e.call("GET", q+c, nil); code(out) != sim.CodeInvalidOAuthCode {
		t.Fatalf("code reused: %v", out)
	}
	if out := e.call("GET", q, nil); code(out) != sim.CodeMissingOAuthCode {
		t.Fatalf("no code: %v", out)
	}
	e.clock.Advance(6 * time.Minute)
	if out := e.call("GET", q+expired, nil); code(out) != sim.CodeInvalidOAuthCode {
		t.Fatalf("expired code: %v", out)
	}
	u := "/cgi-bin/user/get?access_token=" + tok + "&userid="
	if out := e.call("GET", u+"lisi", nil); code(out) != 0 || out["name"] != "李四" {
		t.Fatalf("user/get: %v", out)
	}
	if out := e.call("GET", u+"ghost", nil); code(out) != sim.CodeUserNotFound {
		t.Fatalf("user/get ghost: %v", out)
	}
	if out := e.call("GET", u, nil); code(out) != sim.CodeMissingUserID {
		t.Fatalf("user/get without userid: %v", out)
	}
}

func TestFailNext(t *testing.T) {
	e := newEnv(t, nil)
	e.s.FailNext(2, -1)
	tok := e.token() // gettoken is not affected by FailNext
	for i := 0; i < 2; i++ {
		if out := e.send(tok, text("lisi", "x")); code(out) != -1 {
			t.Fatalf("call %d: %v, want -1", i, out)
		}
	}
	if out := e.send(tok, text("lisi", "x")); code(out) != 0 {
		t.Fatalf("after the faults: %v", out)
	}
	e.s.FailNextOn("message/send", 1, 500)
	resp, err := http.Post(e.base+"/cgi-bin/message/send?access_token="+tok, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("HTTP %d, want 500", resp.StatusCode)
	}
	e.s.FailNextOn("gettoken", 1, sim.CodeFreqLimit)
	if out := e.call("GET", "/cgi-bin/gettoken?corpid=ww0123456789abcdef&corpsecret=helpdesk-demo-secret", nil); code(out) != sim.CodeFreqLimit {
		t.Fatalf("gettoken fault: %v", out)
	}
	if st := e.s.Stats(); st.Faults != 4 {
		t.Fatalf("faults = %d, want 4", st.Faults)
	}
}

func TestWaitSent(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan sim.SentMessage, 1)
	go func() {
		m, err := e.s.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "wangwu" })
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	e.send(tok, text("lisi", "not this"))
	e.send(tok, text("wangwu", "this one"))
	if m := <-done; m.Content != "this one" || m.MsgType != "text" || m.AgentID != 1000002 {
		t.Fatalf("WaitSent = %+v", m)
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := e.s.WaitSent(short, func(sim.SentMessage) bool { return false }); err == nil {
		t.Fatal("WaitSent on a cancelled ctx: no error")
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestClickCodeUpdatesTheCardForEveryRecipient(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	card := map[string]any{"touser": "zhangsan|lisi", "agentid": 1000002, "msgtype": "template_card",
		"template_card": map[string]any{"card_type": "button_interaction", "task_id": "t-42",
			"main_title": map[string]any{"title": "审批"}, "button_list": []any{map[string]any{"text": "同意", "key": "ok"}}}}
	if r := e.send(tok, card); code(r) != 0 {
		t.Fatalf("send card: %v", r)
	}
	rc := e.s.IssueClickCode("helpdesk", "lisi", "t-42")
	upd := map[string]any{"userids": []string{"zhangsan", "lisi"}, "agentid": 1000002, "response_code": rc,
		"button": map[string]any{"replace_name": "已同意"}}
	if r := e.call("POST", "/cgi-bin/message/update_template_card?access_token="+tok, upd); code(r) != 0 {
		t.Fatalf("update: %v", r)
	}
	for _, u := range []string{"zhangsan", "lisi"} {
		got := false
		for _, m := range e.s.SentTo(u) {
			got = got || (m.API == "message/update_template_card" && m.Content == "已同意")
		}
		if !got {
			t.Errorf("%s's card was not updated", u)
		}
	}
}
