package gateway_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom/sim"
)

// passEnv is a gateway whose "erp" key may call user/* through the hub, with
// the simulator as WeCom.
func passEnv(t *testing.T, perMinute int) (*authEnv, string) {
	t.Helper()
	s, err := sim.New(sim.DemoConfig().WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg := testConfig()
	cfg.WeCom.APIBase = s.URL()
	cfg.WeCom.CorpID = sim.DefaultCorpID
	cfg.WeCom.Apps[0].Secret = "helpdesk-demo-secret"
	cfg.Auth.SigningKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cfg.API.Keys[0].PassThrough = []string{"user/*"}
	cfg.PassThroughPerMinute = perMinute
	e := &authEnv{env: startEnv(t, cfg), sim: s}
	status, out := doJSON(t, mustReq(t, "GET", e.srv.URL+"/cgi-bin/gettoken?corpid="+sim.DefaultCorpID+"&corpsecret="+apiKey))
	if status != 200 || out["errcode"].(float64) != 0 {
		t.Fatalf("gettoken: %d %v", status, out)
	}
	return e, out["access_token"].(string)
}

func mustReq(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestPassThroughUsesTheHubsTokenAndTheAllowList(t *testing.T) {
	e, tok := passEnv(t, -1)
	call := func(api string, q url.Values) map[string]any {
		q.Set("access_token", tok)
		_, out := doJSON(t, mustReq(t, "GET", e.srv.URL+"/cgi-bin/"+api+"?"+q.Encode()))
		return out
	}
	// The client holds only its drop-in token; WeCom sees the app's real one.
	out := call("user/get", url.Values{"userid": {"zhangsan"}})
	if out["errcode"].(float64) != 0 || out["userid"] != "zhangsan" {
		t.Fatalf("user/get through the hub: %v", out)
	}
	// WeCom expired the token: the hub refreshes it once and the call succeeds.
	e.sim.ExpireTokens()
	if out := call("user/get", url.Values{"userid": {"lisi"}}); out["errcode"].(float64) != 0 || out["userid"] != "lisi" {
		t.Fatalf("after the token expired: %v", out)
	}
	// Not on the key's list: refused with WeCom's own "api forbidden".
	if out := call("department/list", url.Values{}); out["errcode"].(float64) != 48002 {
		t.Fatalf("department/list: %v, want errcode 48002", out)
	}
	// A forged token never reaches WeCom.
	_, out = doJSON(t, mustReq(t, "GET", e.srv.URL+"/cgi-bin/user/get?userid=zhangsan&access_token=wxh1.erp.1.00"))
	if out["errcode"].(float64) != 40014 {
		t.Fatalf("forged token: %v, want 40014", out)
	}
}

func TestPassThroughCapPerAPI(t *testing.T) {
	e, tok := passEnv(t, 10) // burst 1, then 9 a minute: never more than 10 in 60 s
	get := func() float64 {
		_, out := doJSON(t, mustReq(t, "GET", e.srv.URL+"/cgi-bin/user/get?userid=zhangsan&access_token="+url.QueryEscape(tok)))
		return out["errcode"].(float64)
	}
	if c := get(); c != 0 {
		t.Fatalf("first call: errcode %v", c)
	}
	if c := get(); c != 45009 {
		t.Fatalf("second call at once: errcode %v, want 45009", c)
	}
	e.advance(7 * time.Second) // 9 a minute: one more every 6.7 s
	if c := get(); c != 0 {
		t.Fatalf("after 7 s: errcode %v", c)
	}
}
