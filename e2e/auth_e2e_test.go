package e2e_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/connectors/scanlogin/loginpage"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

const e2eReturn = "http://127.0.0.1:9/erp/login/return"

func withLoginClient(c *config.Config) {
	c.Auth.Clients = []gateway.AuthClient{{Name: "erp-login", Title: "ERP 系统", Keys: []string{"erp"},
		RedirectURLs: []string{"http://127.0.0.1:9/erp/login/"}}}
}

// authAPI is the legacy login page's side: the hub's auth API with its key.
func (e *e2e) authAPI() *resty.Client {
	return resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey).SetTimeout(5 * time.Second).
		SetRedirectPolicy(resty.NoRedirectPolicy())
}

func (e *e2e) keySet(t *testing.T) scanlogin.KeySet {
	t.Helper()
	var ks scanlogin.KeySet
	if _, err := resty.New().R().SetResult(&ks).Get("http://" + e.hubAddr + "/api/v1/auth/keys"); err != nil || len(ks.Keys) == 0 {
		t.Fatalf("keys: %v %+v", err, ks)
	}
	return ks
}

func (e *e2e) newChallenge(t *testing.T, body string) map[string]string {
	t.Helper()
	var out map[string]string
	resp, err := e.authAPI().R().SetBody(body).SetHeader("Content-Type", "application/json").SetResult(&out).Post("/api/v1/auth/challenges")
	if err != nil || resp.StatusCode() != http.StatusCreated {
		t.Fatalf("create challenge: %v %s", err, resp)
	}
	return out
}

func TestE2EScanToLogin(t *testing.T) {
	e := startE2E(t, withConfig(withLoginClient))
	ctx := waitCtx(t, 30*time.Second)
	ch := e.newChallenge(t, `{"app":"helpdesk","client":"erp-login"}`)

	// zhangsan scans the QR code with the app's scancode_waitmsg menu button.
	if d, err := e.sim.SendEvent(ctx, "helpdesk", "zhangsan", schemas.EventData{Event: "scancode_waitmsg", EventKey: "login",
		ScanType: "qrcode", ScanResult: ch["qr_text"]}); err != nil || d.Status != 200 {
		t.Fatalf("scan: %+v %v", d, err)
	}
	card, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && m.MsgType == "template_card" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(card.Body), schemas.AuthTaskPrefix+ch["id"]) || !strings.Contains(string(card.Body), "ERP 系统") {
		t.Fatalf("confirm card %s", card.Body)
	}
	var st map[string]string
	if _, err := e.authAPI().R().SetResult(&st).Get(ch["poll"]); err != nil || st["status"] != "scanned" {
		t.Fatalf("before the click: %v %v", st, err)
	}
	if _, err := e.sim.ClickCard(ctx, "helpdesk", "zhangsan", card, scanlogin.KeyConfirm); err != nil {
		t.Fatal(err)
	}

	// The page polls until the connector recorded the click.
	for st["status"] != "confirmed" {
		if ctx.Err() != nil || (st["status"] != "scanned" && st["status"] != "pending") {
			t.Fatalf("poll: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
		st = nil
		if _, err := e.authAPI().R().SetResult(&st).Get(ch["poll"]); err != nil {
			t.Fatal(err)
		}
	}
	claims, err := scanlogin.Verify(st["assertion"], e.keySet(t), "wxhub", "erp-login", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "zhangsan" || claims.Challenge != ch["id"] || claims.Corp != sim.DefaultCorpID || claims.Methods[0] != schemas.AuthMethodScan {
		t.Errorf("claims %+v", claims)
	}
	st = nil
	if _, err := e.authAPI().R().SetResult(&st).Get(ch["poll"]); err != nil || st["status"] != "consumed" || st["assertion"] != "" {
		t.Fatalf("second fetch: %v %v", st, err)
	}
	// The card's buttons became "已确认登录".
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool {
		return m.API == "message/update_template_card" && strings.Contains(string(m.Body), "已确认登录")
	}); err != nil {
		t.Fatalf("card update: %v", err)
	}

	// lisi scanning the same, already used code is told so.
	if _, err := e.sim.SendEvent(ctx, "helpdesk", "lisi", schemas.EventData{Event: "scancode_waitmsg", EventKey: "login",
		ScanType: "qrcode", ScanResult: ch["qr_text"]}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "lisi" && strings.Contains(m.Content, "已被使用") }); err != nil {
		t.Fatal(err)
	}
}

func TestE2EOAuthLogin(t *testing.T) {
	e := startE2E(t, withConfig(withLoginClient))
	ctx := waitCtx(t, 30*time.Second)
	ch := e.newChallenge(t, `{"app":"helpdesk","client":"erp-login","return":"`+e2eReturn+`"}`)
	if !strings.Contains(ch["oauth_url"], "state="+ch["id"]) {
		t.Fatalf("oauth_url %q", ch["oauth_url"])
	}
	code, err := e.sim.IssueOAuthCode("lisi")
	if err != nil {
		t.Fatal(err)
	}
	// WeCom sends the browser back to the hub with the code; the hub sends it on.
	resp, err := e.authAPI().R().SetContext(ctx).SetAuthToken("").SetQueryParams(map[string]string{"code": code, "state": ch["id"]}).
		Get("/api/v1/auth/oauth/callback")
	if resp == nil || resp.StatusCode() != http.StatusSeeOther {
		t.Fatalf("callback: %v %v", resp, err)
	}
	loc, err := url.Parse(resp.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), e2eReturn+"?") {
		t.Fatalf("redirect to %v", loc)
	}
	claims, err := scanlogin.Verify(loc.Query().Get("wxhub_assertion"), e.keySet(t), "wxhub", "erp-login", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "lisi" || claims.Methods[0] != schemas.AuthMethodOAuth {
		t.Errorf("claims %+v", claims)
	}
	raw, _ := json.Marshal(claims)
	t.Logf("assertion claims: %s", raw)
}

func TestVerifyRejects(t *testing.T) {
	e := startE2E(t, withConfig(withLoginClient), withOnly("gateway"))
	ks := e.keySet(t)
	ch := e.newChallenge(t, `{"app":"helpdesk","client":"erp-login","return":"`+e2eReturn+`"}`)
	code, _ := e.sim.IssueOAuthCode("wangwu")
	resp, _ := e.authAPI().R().SetQueryParams(map[string]string{"code": code, "state": ch["id"]}).Get("/api/v1/auth/oauth/callback")
	loc, _ := url.Parse(resp.Header().Get("Location"))
	token := loc.Query().Get("wxhub_assertion")
	parts := strings.Split(token, ".")
	tests := []struct {
		name, token, aud string
		at               time.Time
	}{
		{"other audience", token, "payroll", time.Now()},
		{"expired", token, "erp-login", time.Now().Add(2 * time.Minute)},
		{"swapped payload", parts[0] + "." + parts[0] + "." + parts[2], "erp-login", time.Now()},
		{"no signature", parts[0] + "." + parts[1] + ".", "erp-login", time.Now()},
		{"garbage", "x", "erp-login", time.Now()},
	}
	if _, err := scanlogin.Verify(token, ks, "wxhub", "erp-login", time.Now()); err != nil {
		t.Fatalf("the genuine one: %v", err)
	}
	for _, tt := range tests {
		if _, err := scanlogin.Verify(tt.token, ks, "wxhub", tt.aud, tt.at); err == nil {
			t.Errorf("%s: verified", tt.name)
		}
	}
}

// TestE2ELoginPage drives the sample legacy login page as a browser would: the
// page's server creates the challenge and polls the hub, the browser only
// sees the QR code and the page's own status.
func TestE2ELoginPage(t *testing.T) {
	var page http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { page.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e := startE2E(t, withConfig(func(c *config.Config) {
		withLoginClient(c)
		c.Auth.Clients[0].RedirectURLs = append(c.Auth.Clients[0].RedirectURLs, srv.URL+"/")
	}))
	lp, err := loginpage.New(loginpage.Config{HubURL: "http://" + e.hubAddr, APIKey: hub.DemoAPIKey, Client: "erp-login", PublicURL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	page = lp
	ctx := waitCtx(t, 30*time.Second)
	browser := resty.New().SetBaseURL(srv.URL).SetTimeout(5 * time.Second).SetRedirectPolicy(resty.NoRedirectPolicy())

	resp, err := browser.R().Get("/")
	if err != nil || resp.StatusCode() != 200 {
		t.Fatalf("page: %v %v", resp, err)
	}
	html := resp.String()
	m := regexp.MustCompile(`data-id="([0-9a-f]{32})"`).FindStringSubmatch(html)
	if m == nil || !strings.Contains(html, "<svg") || strings.Contains(html, hub.DemoAPIKey) {
		t.Fatalf("page without QR code or id, or with the API key: %.400s", html)
	}
	id := m[1]
	if _, err := e.sim.SendEvent(ctx, "helpdesk", "zhangsan", schemas.EventData{Event: "scancode_waitmsg", EventKey: "login",
		ScanType: "qrcode", ScanResult: schemas.AuthQRPrefix + id}); err != nil {
		t.Fatal(err)
	}
	card, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && m.MsgType == "template_card" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.ClickCard(ctx, "helpdesk", "zhangsan", card, scanlogin.KeyConfirm); err != nil {
		t.Fatal(err)
	}
	var st map[string]string
	for st["status"] != "confirmed" {
		if ctx.Err() != nil {
			t.Fatalf("page status: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
		st = nil
		if _, err := browser.R().SetResult(&st).Get("/status?id=" + id); err != nil {
			t.Fatal(err)
		}
	}
	if st["user"] != "zhangsan" {
		t.Fatalf("page status %v", st)
	}

	// OAuth: the page sends the browser to WeCom, WeCom back to the hub with a code,
	// the hub back to the page with the assertion.
	resp, _ = browser.R().Get("/oauth")
	wecomURL, _ := url.Parse(resp.Header().Get("Location"))
	if resp.StatusCode() != http.StatusFound || wecomURL == nil || wecomURL.Host != "open.weixin.qq.com" {
		t.Fatalf("oauth start: %v %v", resp.StatusCode(), wecomURL)
	}
	code, _ := e.sim.IssueOAuthCode("lisi")
	resp, _ = browser.R().Get(wecomURL.Query().Get("redirect_uri") + "?code=" + code + "&state=" + wecomURL.Query().Get("state"))
	back := resp.Header().Get("Location")
	if !strings.HasPrefix(back, srv.URL+"/return?") {
		t.Fatalf("hub sent the browser to %q", back)
	}
	resp, _ = browser.R().Get(back)
	if resp.StatusCode() != 200 || !strings.Contains(resp.String(), "已登录：lisi") {
		t.Fatalf("return page: %d %.300s", resp.StatusCode(), resp.String())
	}
	if resp, _ = browser.R().Get("/return?wxhub_assertion=forged.token.x"); resp.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("forged return: %d", resp.StatusCode())
	}
}
