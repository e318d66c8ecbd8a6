package sim_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/wecom/sim"
)

func TestContactsAPIs(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	for _, tc := range []struct {
		name, path string
		wantCode   int
		check      func(map[string]any) bool
	}{
		{"all departments", "/cgi-bin/department/list", 0, func(m map[string]any) bool {
			ds := m["department"].([]any)
			d := ds[1].(map[string]any)
			return len(ds) == 4 && d["name"] == "销售部" && d["parentid"] == float64(1) && d["department_leader"].([]any)[0] == "zhangsan"
		}},
		{"subtree of 3", "/cgi-bin/department/list?id=3", 0, func(m map[string]any) bool { return len(m["department"].([]any)) == 1 }},
		{"unknown department", "/cgi-bin/department/list?id=99", 60003, nil},
		{"bad department id", "/cgi-bin/department/list?id=x", 60123, nil},
		{"members of 2", "/cgi-bin/user/list?department_id=2", 0, func(m map[string]any) bool {
			us := m["userlist"].([]any)
			u := us[0].(map[string]any)
			attrs := u["extattr"].(map[string]any)["attrs"].([]any)
			return len(us) == 2 && u["userid"] == "zhangsan" && u["is_leader_in_dept"].([]any)[1] == float64(1) &&
				attrs[0].(map[string]any)["name"] == "工号" && u["main_department"] == float64(1)
		}},
		{"members of 1 with children", "/cgi-bin/user/list?department_id=1&fetch_child=1", 0, func(m map[string]any) bool { return len(m["userlist"].([]any)) == 6 }},
		{"members of unknown", "/cgi-bin/user/list?department_id=77", 60003, nil},
		{"tags", "/cgi-bin/tag/list", 0, func(m map[string]any) bool {
			return m["taglist"].([]any)[0].(map[string]any)["tagname"] == "品牌大使"
		}},
		{"tag members", "/cgi-bin/tag/get?tagid=1", 0, func(m map[string]any) bool {
			return len(m["userlist"].([]any)) == 2 && m["tagname"] == "品牌大使" && len(m["partylist"].([]any)) == 0
		}},
		{"unknown tag", "/cgi-bin/tag/get?tagid=5", 40068, nil},
		{"user/get unknown", "/cgi-bin/user/get?userid=nobody", 60111, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sep := "?"
			if strings.Contains(tc.path, "?") {
				sep = "&"
			}
			out := e.call("GET", tc.path+sep+"access_token="+tok, nil)
			if code(out) != tc.wantCode || (tc.check != nil && !tc.check(out)) {
				t.Fatalf("%s: %v", tc.path, out)
			}
		})
	}
	if out := e.call("GET", "/cgi-bin/tag/list", nil); code(out) != 41001 {
		t.Fatalf("without token: %v", out)
	}
	// A changed member shows in the APIs at once.
	if _, err := e.s.PutUser(context.Background(), "", sim.User{UserID: "qianjiu", Name: "钱九", Department: []int64{4}}); err != nil {
		t.Fatal(err)
	}
	if out := e.call("GET", "/cgi-bin/user/list?department_id=4&access_token="+tok, nil); len(out["userlist"].([]any)) != 3 {
		t.Fatalf("after PutUser: %v", out)
	}
	if _, err := e.s.DeleteUser(context.Background(), "", "qianjiu"); err != nil {
		t.Fatal(err)
	}
	if out := e.call("GET", "/cgi-bin/user/get?userid=qianjiu&access_token="+tok, nil); code(out) != 60111 {
		t.Fatalf("after DeleteUser: %v", out)
	}
}

func TestOAuthAuthorizePage(t *testing.T) {
	e := newEnv(t, nil)
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"appid": {"ww0123456789abcdef"}, "redirect_uri": {"http://127.0.0.1:1/cb?x=1"}, "response_type": {"code"},
		"scope": {"snsapi_base"}, "state": {"s1"}, "agentid": {"1000002"}}
	resp, err := noFollow.Get(e.base + "/connect/oauth2/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("without a member: %d, want the member picker", resp.StatusCode)
	}
	q.Set("sim_user", "lisi")
	resp, _ = noFollow.Get(e.base + "/connect/oauth2/authorize?" + q.Encode())
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != 302 || loc.Query().Get("state") != "s1" || loc.Query().Get("x") != "1" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %v", resp.StatusCode, loc)
	}
	tok := e.token()
	if out := e.call("GET", "/cgi-bin/auth/getuserinfo?access_token="+tok+"&code="+loc.Query().Get("code"), nil); out["userid"] != "lisi" {
		t.Fatalf("getuserinfo: %v", out)
	}
	// The cookie remembers the member, as a logged-in WeCom app does.
	q.Del("sim_user")
	resp, _ = noFollow.Get(e.base + "/connect/oauth2/authorize?" + q.Encode())
	resp.Body.Close()
	if resp.StatusCode != 302 {
		t.Fatalf("second authorize: %d", resp.StatusCode)
	}
	for _, bad := range []func(url.Values){
		func(v url.Values) { v.Set("appid", "wrong") },
		func(v url.Values) { v.Set("agentid", "999") },
		func(v url.Values) { v.Set("redirect_uri", "/relative") },
	} {
		v := url.Values{}
		for k, x := range q {
			v[k] = x
		}
		bad(v)
		resp, _ = noFollow.Get(e.base + "/connect/oauth2/authorize?" + v.Encode())
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("%v: %d, want 400", v, resp.StatusCode)
		}
	}
}

// Two corps: each app reads its own corp's address book (department 2 and tag
// 1 exist in both, with other members); a send to a department reaches the
// sending app's corp; a member put in the dealer corp shows only there.
func TestContactsPerCorp(t *testing.T) {
	e := newEnv(t, sim.AddDemoDealer)
	out := e.call("GET", "/cgi-bin/gettoken?corpid="+sim.DemoDealerCorpID+"&corpsecret=dealer-demo-secret", nil)
	dealer, _ := out["access_token"].(string)
	if dealer == "" {
		t.Fatalf("gettoken: %v", out)
	}
	userids := func(m map[string]any) []string {
		var ids []string
		for _, u := range m["userlist"].([]any) {
			ids = append(ids, u.(map[string]any)["userid"].(string))
		}
		return ids
	}
	if got := userids(e.call("GET", "/cgi-bin/user/list?department_id=2&access_token="+dealer, nil)); strings.Join(got, ",") != "chenyi,liuer" {
		t.Fatalf("dealer's department 2: %v", got)
	}
	if got := userids(e.call("GET", "/cgi-bin/user/list?department_id=2&access_token="+e.token(), nil)); strings.Join(got, ",") != "zhangsan,wangwu" {
		t.Fatalf("demo corp's department 2: %v", got)
	}
	if ds := e.call("GET", "/cgi-bin/department/list?access_token="+dealer, nil)["department"].([]any); len(ds) != 3 || ds[0].(map[string]any)["name"] != "示例经销商" {
		t.Fatalf("dealer's departments: %v", ds)
	}
	if got := userids(e.call("GET", "/cgi-bin/tag/get?tagid=1&access_token="+dealer, nil)); strings.Join(got, ",") != "chenyi" {
		t.Fatalf("dealer's tag 1: %v", got)
	}
	if out := e.call("GET", "/cgi-bin/user/get?userid=chenyi&access_token="+dealer, nil); out["name"] == nil {
		t.Fatalf("dealer's user/get chenyi: %v", out)
	}
	if out := e.call("GET", "/cgi-bin/user/get?userid=chenyi&access_token="+e.token(), nil); code(out) != sim.CodeUserNotFound {
		t.Fatalf("the demo corp's user/get of the dealer's chenyi: %v", out)
	}
	m := map[string]any{"toparty": "3", "msgtype": "text", "agentid": sim.DemoDealerAgent, "text": map[string]any{"content": "华南周会"}}
	if out := e.send(dealer, m); code(out) != 0 {
		t.Fatalf("dealer's send to department 3: %v", out)
	}
	if got := e.s.SentTo("zhousan"); len(got) != 1 {
		t.Fatalf("zhousan got %d messages", len(got))
	}
	if got := e.s.SentTo("lisi"); len(got) != 0 { // the demo corp's department 3
		t.Fatalf("lisi of the other corp got %d", len(got))
	}
	if _, err := e.s.PutUser(context.Background(), "", sim.User{UserID: "wuliu", Name: "吴六", Department: []int64{2}, CorpID: sim.DemoDealerCorpID}); err != nil {
		t.Fatal(err)
	}
	if got := userids(e.call("GET", "/cgi-bin/user/list?department_id=2&access_token="+dealer, nil)); strings.Join(got, ",") != "chenyi,liuer,wuliu" {
		t.Fatalf("dealer's department 2 after PutUser: %v", got)
	}
	if got := userids(e.call("GET", "/cgi-bin/user/list?department_id=2&access_token="+e.token(), nil)); strings.Join(got, ",") != "zhangsan,wangwu" {
		t.Fatalf("demo corp's department 2 after the dealer's PutUser: %v", got)
	}
}
