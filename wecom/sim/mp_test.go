package sim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

const (
	mpAppID  = "wx5823bf96d3bd56c7" // DemoConfig's "service" account
	mpSecret = "service-demo-secret"
)

var follower = sim.DemoOpenIDs[0]

// newMPEnv is newEnv with a gateway that answers every callback "success", so
// that Say and SendEvent can play Official Account users.
func newMPEnv(t *testing.T) *env {
	t.Helper()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("success")) }))
	t.Cleanup(gw.Close)
	return newEnv(t, func(c *sim.Config) { c.GatewayURL = gw.URL })
}

func (e *env) mpToken() string {
	e.t.Helper()
	out := e.call("GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpAppID+"&secret="+mpSecret, nil)
	tok, _ := out["access_token"].(string)
	if tok == "" || out["expires_in"] != float64(7200) {
		e.t.Fatalf("token: %v", out)
	}
	return tok
}

func (e *env) custom(tok, openid, content string) map[string]any {
	e.t.Helper()
	return e.call("POST", "/cgi-bin/message/custom/send?access_token="+tok,
		map[string]any{"touser": openid, "msgtype": "text", "text": map[string]any{"content": content}})
}

func (e *env) say(openid, text string) {
	e.t.Helper()
	if _, err := e.s.Say(context.Background(), "service", openid, text); err != nil {
		e.t.Fatal(err)
	}
}

func TestMPToken(t *testing.T) {
	tests := []struct {
		name, query string
		want        int
	}{
		{"wrong grant_type", "grant_type=password&appid=" + mpAppID + "&secret=" + mpSecret, 40002},
		{"no appid", "grant_type=client_credential&secret=" + mpSecret, 41002},
		{"unknown appid", "grant_type=client_credential&appid=wxnope&secret=" + mpSecret, 40013},
		{"no secret", "grant_type=client_credential&appid=" + mpAppID, 41004},
		{"wrong secret", "grant_type=client_credential&appid=" + mpAppID + "&secret=nope", 40125},
	}
	e := newEnv(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := e.call("GET", "/cgi-bin/token?"+tt.query, nil)
			if code(out) != tt.want || !strings.Contains(out["errmsg"].(string), "rid: ") {
				t.Fatalf("answer %v, want errcode %d", out, tt.want)
			}
		})
	}
	t.Run("a new token replaces the old one after 5 minutes", func(t *testing.T) {
		first := e.mpToken()
		second := e.mpToken()
		if first == second {
			t.Fatal("WeChat issues a new token on every call")
		}
		if got := code(e.custom(first, "nobody", "x")); got != 40003 { // the old token still works: past it, touser fails
			t.Fatalf("old token within grace: errcode %d, want 40003", got)
		}
		e.clock.Advance(5 * time.Minute)
		if got := code(e.custom(first, "nobody", "x")); got != 40001 {
			t.Fatalf("replaced token after grace: errcode %d, want 40001", got)
		}
		if got := code(e.custom(second, "nobody", "x")); got != 40003 {
			t.Fatalf("current token: errcode %d, want 40003", got)
		}
		e.clock.Advance(2 * time.Hour)
		if got := code(e.custom(second, "nobody", "x")); got != 42001 {
			t.Fatalf("expired token: errcode %d, want 42001", got)
		}
		if e.s.GetTokenCalls("service") != 2 {
			t.Errorf("GetTokenCalls = %d", e.s.GetTokenCalls("service"))
		}
	})
	t.Run("tokens do not cross between WeCom and the Official Account", func(t *testing.T) {
		if got := code(e.send(e.mpToken(), text("zhangsan", "x"))); got != 40014 {
			t.Errorf("MP token on message/send: errcode %d, want 40014", got)
		}
		if got := code(e.custom(e.token(), follower, "x")); got != 40001 {
			t.Errorf("WeCom token on custom/send: errcode %d, want 40001", got)
		}
	})
}

func TestMPCustomSendWindow(t *testing.T) {
	e := newMPEnv(t)
	tok := e.mpToken()
	// A follower who has not interacted since the simulator started.
	if got := code(e.custom(tok, follower, "hi")); got != 45015 {
		t.Fatalf("no interaction: errcode %d, want 45015", got)
	}
	e.say(follower, "你好")
	for i := 1; i <= sim.MPMessagesPerInteraction; i++ {
		if out := e.custom(tok, follower, "answer"); code(out) != 0 || out["errmsg"] != "ok" {
			t.Fatalf("send %d: %v", i, out)
		}
	}
	if got := code(e.custom(tok, follower, "one too many")); got != 45047 {
		t.Fatalf("send %d: errcode %d, want 45047", sim.MPMessagesPerInteraction+1, got)
	}
	// A click starts the count again; an automatic location report would not.
	if _, err := e.s.SendEvent(context.Background(), "service", follower, schemas.EventData{Event: "LOCATION", Latitude: 31.2}); err != nil {
		t.Fatal(err)
	}
	if got := code(e.custom(tok, follower, "x")); got != 45047 {
		t.Fatalf("after LOCATION: errcode %d, want 45047", got)
	}
	if _, err := e.s.SendEvent(context.Background(), "service", follower, schemas.EventData{Event: "CLICK", EventKey: "menu"}); err != nil {
		t.Fatal(err)
	}
	if got := code(e.custom(tok, follower, "after click")); got != 0 {
		t.Fatalf("after CLICK: errcode %d, want 0", got)
	}
	e.clock.Advance(sim.MPWindow - time.Second)
	tok = e.mpToken() // the first one expired meanwhile
	if got := code(e.custom(tok, follower, "just in time")); got != 0 {
		t.Fatalf("within 48 h: errcode %d", got)
	}
	e.clock.Advance(time.Second)
	if got := code(e.custom(tok, follower, "too late")); got != 45015 {
		t.Fatalf("48 h later: errcode %d, want 45015", got)
	}
	last, sent, following := e.s.MPWindow("service", follower)
	if last.IsZero() || sent != 2 || !following {
		t.Errorf("MPWindow = %v, %d, %v", last, sent, following)
	}

	var got []string
	for _, m := range e.s.SentTo(follower) {
		if m.API != "message/custom/send" || m.App != "service" || m.MsgType != "text" || m.MsgID == "" {
			t.Errorf("recorded %+v", m)
		}
		got = append(got, m.Content)
	}
	if len(got) != 7 || got[6] != "just in time" {
		t.Errorf("sent %q", got)
	}
}

func TestMPCustomSendRejects(t *testing.T) {
	e := newMPEnv(t)
	tok := e.mpToken()
	e.say(follower, "hi")
	tests := []struct {
		name string
		body any
		want int
	}{
		{"not json", "{", 47001},
		{"unknown openid", map[string]any{"touser": "ounknown", "msgtype": "text", "text": map[string]any{"content": "x"}}, 40003},
		{"no touser", map[string]any{"msgtype": "text", "text": map[string]any{"content": "x"}}, 40003},
		{"WeCom-only msgtype", map[string]any{"touser": follower, "msgtype": "markdown", "markdown": map[string]any{"content": "x"}}, 40008},
		{"empty text", map[string]any{"touser": follower, "msgtype": "text", "text": map[string]any{"content": " "}}, 44004},
		{"two articles", map[string]any{"touser": follower, "msgtype": "news", "news": map[string]any{"articles": []any{
			map[string]any{"title": "a", "url": "http://x"}, map[string]any{"title": "b", "url": "http://y"}}}}, 45008},
		{"image without media", map[string]any{"touser": follower, "msgtype": "image", "image": map[string]any{}}, 41006},
		{"GET", nil, 43002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			if tt.body == nil {
				method = "GET"
			}
			if out := e.call(method, "/cgi-bin/message/custom/send?access_token="+tok, tt.body); code(out) != tt.want {
				t.Fatalf("answer %v, want errcode %d", out, tt.want)
			}
		})
	}
	if n := len(e.s.SentTo(follower)); n != 0 {
		t.Errorf("%d messages recorded from rejected calls", n)
	}
	// Rejected calls do not use up the per-interaction allowance.
	if _, sent, _ := e.s.MPWindow("service", follower); sent != 0 {
		t.Errorf("sent = %d after rejections", sent)
	}
	e.s.FailNextOn("message/custom/send", 1, 45015)
	if got := code(e.custom(tok, follower, "x")); got != 45015 {
		t.Errorf("injected fault: errcode %d", got)
	}
	if got := code(e.custom(tok, follower, "x")); got != 0 {
		t.Errorf("after the fault: errcode %d", got)
	}
}

func TestMPTemplateSend(t *testing.T) {
	e := newMPEnv(t)
	tok := e.mpToken()
	data := func(keys ...string) map[string]any {
		d := map[string]any{}
		for _, k := range keys {
			d[k] = map[string]any{"value": "v-" + k}
		}
		d["first"] = map[string]any{"value": "订单已发货", "color": "#173177"}
		return d
	}
	tmpl := func(openid, id string) map[string]any {
		return map[string]any{"touser": openid, "template_id": id, "url": "https://example.com/o/1",
			"data": data("keyword1", "keyword2", "remark")}
	}
	// Template messages need no recent interaction: a configured follower gets one.
	out := e.call("POST", "/cgi-bin/message/template/send?access_token="+tok, tmpl(follower, sim.DemoTemplateShipped))
	if code(out) != 0 || out["msgid"] == nil {
		t.Fatalf("template: %v", out)
	}
	m, err := e.s.WaitSent(context.Background(), func(m sim.SentMessage) bool { return m.API == "message/template/send" })
	if err != nil || m.App != "service" || m.User != follower || m.Content != "订单已发货" || m.MsgType != "template" {
		t.Fatalf("recorded %+v %v", m, err)
	}
	tests := []struct {
		name string
		body any
		want int
	}{
		{"unknown openid", tmpl("ounknown", sim.DemoTemplateShipped), 40003},
		{"template not in the library", tmpl(follower, "TPL-nope"), 40037},
		{"data missing a key of the template", map[string]any{"touser": follower, "template_id": sim.DemoTemplateShipped, "data": data("keyword1", "remark")}, 47003},
		{"no template_id", tmpl(follower, ""), 40037},
		{"bad data", map[string]any{"touser": follower, "template_id": "T", "data": []any{1}}, 47003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out := e.call("POST", "/cgi-bin/message/template/send?access_token="+tok, tt.body); code(out) != tt.want {
				t.Fatalf("answer %v, want errcode %d", out, tt.want)
			}
		})
	}
	t.Run("unfollowed", func(t *testing.T) {
		e.say(follower, "bye")
		if _, err := e.s.SendEvent(context.Background(), "service", follower, schemas.EventData{Event: "unsubscribe"}); err != nil {
			t.Fatal(err)
		}
		if got := code(e.call("POST", "/cgi-bin/message/template/send?access_token="+tok, tmpl(follower, sim.DemoTemplateShipped))); got != 43004 {
			t.Errorf("template to an unfollower: errcode %d, want 43004", got)
		}
		if got := code(e.custom(tok, follower, "x")); got != 45015 {
			t.Errorf("custom to an unfollower: errcode %d, want 45015", got)
		}
		if _, err := e.s.SendEvent(context.Background(), "service", follower, schemas.EventData{Event: "subscribe"}); err != nil {
			t.Fatal(err)
		}
		if got := code(e.custom(tok, follower, "welcome back")); got != 0 {
			t.Errorf("after subscribe: errcode %d", got)
		}
	})
}

func TestMPConfigFollowers(t *testing.T) {
	cfg := sim.DemoConfig()
	cfg.Accounts[0].Followers = []string{"bad openid!"}
	if _, err := sim.New(cfg); err == nil || !strings.Contains(err.Error(), "accounts[0].followers[0]") {
		t.Fatalf("err = %v, want it to name accounts[0].followers[0]", err)
	}
}

// WeChat sends one template message per openid and client_msg_id: a repeat
// within 10 minutes answers the first msgid and is not shown again.
func TestMPTemplateClientMsgID(t *testing.T) {
	e := newMPEnv(t)
	tok := e.mpToken()
	follower := sim.DemoOpenIDs[0]
	send := func(openid, cmid string) map[string]any {
		b := map[string]any{"touser": openid, "template_id": sim.DemoTemplateShipped, "data": map[string]any{
			"first": map[string]any{"value": "订单已发货"}, "keyword1": map[string]any{"value": "1001"},
			"keyword2": map[string]any{"value": "顺丰"}, "remark": map[string]any{"value": "谢谢"}}}
		if cmid != "" {
			b["client_msg_id"] = cmid
		}
		out := e.call("POST", "/cgi-bin/message/template/send?access_token="+tok, b)
		if code(out) != 0 {
			t.Fatalf("template %s: %v", cmid, out)
		}
		return out
	}
	templates := func() int {
		n := 0
		for _, m := range e.s.Sent() {
			if m.API == "message/template/send" {
				n++
			}
		}
		return n
	}
	first := send(follower, "m-1")
	if again := send(follower, "m-1"); again["msgid"] != first["msgid"] || templates() != 1 {
		t.Fatalf("repeat: msgid %v (first %v), %d shown", again["msgid"], first["msgid"], templates())
	}
	send(follower, "m-2")           // another id
	send(sim.DemoOpenIDs[1], "m-1") // another follower
	send(follower, "")              // no id: never de-duplicated
	send(follower, "")
	if n := templates(); n != 5 {
		t.Fatalf("%d template messages shown, want 5", n)
	}
	e.clock.Advance(10*time.Minute + time.Second)
	if again := send(follower, "m-1"); again["msgid"] == first["msgid"] || templates() != 6 {
		t.Fatalf("after 10 minutes: msgid %v, %d shown, want a new message", again["msgid"], templates())
	}
}
