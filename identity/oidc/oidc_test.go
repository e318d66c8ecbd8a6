package oidc_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/identity/oidc"
	"github.com/wxhub/wxhub/identity/oidcdemo"
	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/internal/idtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

const secret = "demo-client-secret-0123456789"

type env struct {
	t      *testing.T
	b      *bus.Bus
	sim    *sim.Server
	hub    *httptest.Server
	prov   *oidc.Provider
	pins   *pin.Store
	app    *oidcdemo.App
	appURL string
}

type opts struct {
	requirePIN bool
	webLogin   bool
	refresh    time.Duration
	now        func() time.Time
	b          *bus.Bus
	sim        *sim.Server
}

// newEnv serves a provider (issuer = its own URL) and the sample client app.
func newEnv(t *testing.T, o opts) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, b: o.b, sim: o.sim}
	if e.b == nil {
		e.b = bustest.Open(t, bus.Config{})
	}
	if e.sim == nil {
		e.sim = idtest.Sim(t)
	}
	if o.now == nil {
		o.now = time.Now
	}
	e.hub = httptest.NewServer(nil)
	t.Cleanup(e.hub.Close)
	appSrv := httptest.NewServer(nil)
	t.Cleanup(appSrv.Close)
	e.appURL = appSrv.URL + "/"
	kv := func(name string) jetstream.KeyValue {
		k, err := e.b.KV(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	var err error
	e.pins, err = pin.NewStore(kv(bus.BucketPIN), pin.Config{ArgonTime: 1, ArgonMemory: 1024, ArgonThreads: 1}, pin.WithClock(o.now))
	if err != nil {
		t.Fatal(err)
	}
	cfg := oidc.Config{Issuer: e.hub.URL, App: "helpdesk", RefreshTokenTTL: o.refresh, WeComWebLogin: o.webLogin, Clients: []oidc.Client{{
		ID: "erp", Secret: secret, Name: "ERP 系统", RedirectURIs: []string{e.appURL + "callback"}, RequirePIN: o.requirePIN,
	}}}
	e.prov, err = oidc.New(cfg, oidc.Deps{
		Keys: kv(bus.BucketOIDCKeys), Store: kv(bus.BucketOIDC), Challenges: kv(bus.BucketAuth),
		Login: idtest.Login(e.sim), PIN: e.pins, Now: o.now, Logger: zap.NewNop(),
		Claims: func(_ context.Context, user string) (map[string]any, error) {
			return map[string]any{"name": "name-of-" + user}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.prov.EnsureKey(ctx); err != nil {
		t.Fatal(err)
	}
	e.hub.Config.Handler = e.prov
	e.app, err = oidcdemo.New(oidcdemo.Config{Issuer: e.hub.URL, ClientID: "erp", ClientSecret: secret, BaseURL: e.appURL, Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	appSrv.Config.Handler = e.app
	return e
}

// wecomUA makes a client look like the WeCom app's browser.
type wecomUA struct{ next http.RoundTripper }

func (u wecomUA) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", "Mozilla/5.0 (iPhone) wxwork/4.1.0 MicroMessenger/7.0.1")
	return u.next.RoundTrip(r)
}

// browser is a cookie-keeping client; inWeCom adds WeCom's User-Agent.
func (e *env) browser(user string, inWeCom bool) *http.Client {
	c := idtest.Browser(e.t, e.sim, user)
	if inWeCom {
		c.Transport = wecomUA{http.DefaultTransport}
	}
	return c
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var subRe = regexp.MustCompile(`id="sub">([^<]+)<`)
var acrRe = regexp.MustCompile(`id="acr">([^<]*)<`)
var amrRe = regexp.MustCompile(`id="amr">([^<]*)<`)

// TestWeComOAuthLogin: inside WeCom, the sample client (go-oidc) logs in
// through the provider and WeCom OAuth on the simulator; go-oidc verifies the
// signature, issuer, audience and expiry, the app the nonce.
func TestWeComOAuthLogin(t *testing.T) {
	e := newEnv(t, opts{})
	br := e.browser("zhangsan", true)
	resp, page := get(t, br, e.appURL+"login")
	if resp.StatusCode != 200 || resp.Request.URL.String() != e.appURL {
		t.Fatalf("ended at %s (%d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	if m := subRe.FindStringSubmatch(page); m == nil || m[1] != "zhangsan" {
		t.Fatalf("not logged in as zhangsan:\n%s", page)
	}
	if acr := acrRe.FindStringSubmatch(page)[1]; acr != schemas.ACRWeCom {
		t.Fatalf("acr %q", acr)
	}
	if amr := amrRe.FindStringSubmatch(page)[1]; amr != schemas.AuthMethodOAuth {
		t.Fatalf("amr %q", amr)
	}
	if !strings.Contains(page, "name-of-zhangsan") {
		t.Fatalf("userinfo claims missing:\n%s", page)
	}
}

// TestWeComWebLogin: with wecom_web_login the desktop login page also links
// WeCom's web login (wwlogin/sso); the simulator's stand-in asks who scans,
// returns a code to the callback and the member ends logged in at the client.
// Without the option there is neither the link nor the route.
func TestWeComWebLogin(t *testing.T) {
	linkRe := regexp.MustCompile(`id="wecom-web" href="([^"]+)"`)
	off := newEnv(t, opts{})
	br := off.browser("", false)
	resp, page := get(t, br, off.appURL+"login")
	if linkRe.MatchString(page) {
		t.Fatalf("web login offered though not configured:\n%s", page)
	}
	loginID := resp.Request.URL.Query().Get("login")
	if r, _ := get(t, br, off.hub.URL+"/oidc/login/wecom-web?login="+loginID); r.StatusCode != 404 {
		t.Fatalf("wecom-web without the option: %d", r.StatusCode)
	}

	e := newEnv(t, opts{webLogin: true})
	br = e.browser("", false)
	_, page = get(t, br, e.appURL+"login")
	m := linkRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no web login link:\n%s", page)
	}
	resp, page = get(t, br, e.hub.URL+html.UnescapeString(m[1]))
	u := resp.Request.URL
	if u.Path != "/wwlogin/sso/login" || u.Query().Get("login_type") != "CorpApp" || u.Query().Get("appid") != e.sim.Config().CorpID ||
		u.Query().Get("agentid") != "1000002" || u.Query().Get("redirect_uri") != e.hub.URL+"/oidc/callback" {
		t.Fatalf("not on the web login page: %s", u)
	}
	as := regexp.MustCompile(`id="as-zhangsan" href="([^"]+)"`).FindStringSubmatch(page)
	if as == nil {
		t.Fatalf("web login page offers no member:\n%s", page)
	}
	next, _ := u.Parse(html.UnescapeString(as[1]))
	resp, page = get(t, br, next.String())
	if resp.StatusCode != 200 || resp.Request.URL.String() != e.appURL {
		t.Fatalf("ended at %s (%d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	if m := subRe.FindStringSubmatch(page); m == nil || m[1] != "zhangsan" {
		t.Fatalf("not logged in as zhangsan:\n%s", page)
	}
	if amr := amrRe.FindStringSubmatch(page)[1]; amr != schemas.AuthMethodOAuth {
		t.Fatalf("amr %q", amr)
	}
}

// TestScanLogin: on a desktop browser the login page shows a QR code; the
// scanlogin connector binds the scanner and the card's confirm, the page's
// poll then carries the browser on to the client, logged in.
func TestScanLogin(t *testing.T) {
	e := newEnv(t, opts{})
	br := e.browser("", false)
	resp, page := get(t, br, e.appURL+"login")
	if !strings.HasPrefix(resp.Request.URL.String(), e.hub.URL+"/oidc/login?login=") {
		t.Fatalf("desktop browser not on the login page: %s", resp.Request.URL)
	}
	loginID := resp.Request.URL.Query().Get("login")
	chID := regexp.MustCompile(`data-text="wxhub-login:([0-9a-f]{32})"`).FindStringSubmatch(page)
	if chID == nil || !strings.Contains(page, "<svg") || !strings.Contains(page, "ERP 系统") {
		t.Fatalf("login page without QR code or client name:\n%s", page)
	}
	status := func() map[string]string {
		_, body := get(t, br, e.hub.URL+"/oidc/login/status?login="+loginID)
		var s map[string]string
		_ = json.Unmarshal([]byte(body), &s)
		return s
	}
	if s := status(); s["status"] != "pending" {
		t.Fatalf("status before scan: %v", s)
	}
	// Another browser (no cookie of this login) learns nothing.
	if r, _ := get(t, e.browser("", false), e.hub.URL+"/oidc/login/status?login="+loginID); r.StatusCode != 404 {
		t.Fatalf("foreign browser polled the login: %d", r.StatusCode)
	}
	scanAndConfirm(t, e.b, chID[1], "lisi")
	s := status()
	if s["status"] != "confirmed" || s["next"] == "" {
		t.Fatalf("status after confirm: %v", s)
	}
	resp, page = get(t, br, e.hub.URL+s["next"])
	if m := subRe.FindStringSubmatch(page); m == nil || m[1] != "lisi" || resp.Request.URL.String() != e.appURL {
		t.Fatalf("not logged in as lisi at %s:\n%s", resp.Request.URL, page)
	}
	if amr := amrRe.FindStringSubmatch(page)[1]; amr != schemas.AuthMethodScan {
		t.Fatalf("amr %q", amr)
	}
	// The challenge was consumed: it cannot be redeemed a second time.
	kv, _ := e.b.KV(context.Background(), bus.BucketAuth)
	ent, _ := kv.Get(context.Background(), chID[1])
	var ch schemas.AuthChallenge
	_ = json.Unmarshal(ent.Value(), &ch)
	if ch.Status != schemas.AuthConsumed {
		t.Fatalf("challenge %s after login, want consumed", ch.Status)
	}
}

var evN atomic.Int64

// scanAndConfirm plays what the hub does when user scans the code in the WeCom
// app and presses 确认登录: the scanlogin connector's handler on those events.
func scanAndConfirm(t *testing.T, b *bus.Bus, challenge, user string) {
	t.Helper()
	kv, _ := b.KV(context.Background(), bus.BucketAuth)
	h := scanlogin.Handler(kv, scanlogin.Options{Confirm: true})
	ev := func(d schemas.EventData) *schemas.Event {
		d.Channel, d.App, d.User, d.MsgType = schemas.ChannelWeCom, "helpdesk", user, "event"
		return &schemas.Event{ID: fmt.Sprintf("ev%d", evN.Add(1)), Data: d}
	}
	if _, err := h.Handle(context.Background(), ev(schemas.EventData{Event: "scancode_waitmsg", EventKey: "login", ScanType: "qrcode", ScanResult: schemas.AuthQRPrefix + challenge})); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Handle(context.Background(), ev(schemas.EventData{Event: "template_card_event", EventKey: scanlogin.KeyConfirm, TaskID: schemas.AuthTaskPrefix + challenge, CardType: "button_interaction", ResponseCode: "rc"})); err != nil {
		t.Fatal(err)
	}
}

// TestPINRequired: a client that requires the PIN gets the PIN page after
// WeCom OAuth; a wrong PIN is refused, the right one completes the login
// with acr urn:wxhub:acr:pin and amr [wecom_oauth pin].
func TestPINRequired(t *testing.T) {
	e := newEnv(t, opts{requirePIN: true})
	if err := e.pins.Set(context.Background(), "wangwu", "482915"); err != nil {
		t.Fatal(err)
	}
	br := e.browser("wangwu", true)
	resp, page := get(t, br, e.appURL+"login")
	if !strings.HasPrefix(resp.Request.URL.String(), e.hub.URL+"/oidc/callback") || !strings.Contains(page, `name="pin"`) {
		t.Fatalf("no PIN page after OAuth: %s\n%s", resp.Request.URL, page)
	}
	action := regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(page)[1]
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	action = strings.ReplaceAll(action, "&amp;", "&")
	post := func(p string) (*http.Response, string) {
		resp, err := br.PostForm(e.hub.URL+action, url.Values{"csrf": {csrf}, "pin": {p}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, page = post("000000"); resp.StatusCode != 403 || !strings.Contains(page, "密码错误") {
		t.Fatalf("wrong PIN: %d\n%s", resp.StatusCode, page)
	}
	resp, page = post("482915")
	if m := subRe.FindStringSubmatch(page); m == nil || m[1] != "wangwu" {
		t.Fatalf("not logged in after the PIN: %s\n%s", resp.Request.URL, page)
	}
	if acr := acrRe.FindStringSubmatch(page)[1]; acr != schemas.ACRPIN {
		t.Fatalf("acr %q", acr)
	}
	if amr := amrRe.FindStringSubmatch(page)[1]; amr != "wecom_oauth, pin" {
		t.Fatalf("amr %q", amr)
	}
}

// codeFlow runs authorize by hand inside WeCom and returns the provider's
// redirect to the client (code or error).
func codeFlow(t *testing.T, e *env, q url.Values) *url.URL {
	t.Helper()
	br := e.browser("zhaoliu", true)
	br.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), e.appURL) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := br.Get(e.hub.URL + "/oidc/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("authorize ended with %d at %s, no redirect to the client", resp.StatusCode, resp.Request.URL)
	}
	return loc
}

func challengeOf(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func (e *env) authQuery(verifier string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {"erp"}, "redirect_uri": {e.appURL + "callback"},
		"scope": {"openid"}, "state": {"st"}, "nonce": {"n1"}, "code_challenge": {challengeOf(verifier)}, "code_challenge_method": {"S256"}}
}

func (e *env) exchange(code, verifier, redirect string) (int, map[string]any) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	req, _ := http.NewRequest("POST", e.hub.URL+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("erp", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-extra"

func TestPKCEEnforced(t *testing.T) {
	e := newEnv(t, opts{})
	for _, tc := range []struct {
		name string
		mod  func(url.Values)
	}{
		{"no code_challenge", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }},
		{"plain method", func(q url.Values) { q.Set("code_challenge", verifier); q.Set("code_challenge_method", "plain") }},
		{"no method", func(q url.Values) { q.Del("code_challenge_method") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := e.authQuery(verifier)
			tc.mod(q)
			loc := codeFlow(t, e, q)
			if loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" || loc.Query().Get("state") != "st" {
				t.Fatalf("redirect %s, want error=invalid_request with the state and no code", loc)
			}
		})
	}
	loc := codeFlow(t, e, e.authQuery(verifier))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", loc)
	}
	if st, out := e.exchange(code, "wrong-verifier-wrong-verifier-wrong-verifier-0", e.appURL+"callback"); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", st, out)
	}
	// The failed attempt used the code up (a code is good once, whatever happens).
	if st, out := e.exchange(code, verifier, e.appURL+"callback"); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("code after a failed exchange: %d %v", st, out)
	}
	code = codeFlow(t, e, e.authQuery(verifier)).Query().Get("code")
	if st, out := e.exchange(code, "", e.appURL+"callback"); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("no verifier: %d %v", st, out)
	}
	code = codeFlow(t, e, e.authQuery(verifier)).Query().Get("code")
	st, out := e.exchange(code, verifier, e.appURL+"callback")
	if st != 200 || out["id_token"] == nil || out["access_token"] == nil {
		t.Fatalf("right verifier: %d %v", st, out)
	}
	if st, out := e.exchange(code, verifier, e.appURL+"callback"); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("code replayed: %d %v", st, out)
	}
}

func TestWrongRedirectURIRefused(t *testing.T) {
	e := newEnv(t, opts{})
	good := e.appURL + "callback"
	u, _ := url.Parse(good)
	for _, bad := range []string{
		good + "/", good + "?x=1", strings.Replace(good, "callback", "Callback", 1), "http://evil.example/callback",
		"http://" + u.Hostname() + ":1" + u.Path, good + "#f", "",
	} {
		t.Run(bad, func(t *testing.T) {
			q := e.authQuery(verifier)
			q.Set("redirect_uri", bad)
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Get(e.hub.URL + "/oidc/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Fatalf("redirect_uri %q: %d Location %q, want 400 and no redirect", bad, resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	// A code issued for the registered URI cannot be redeemed with another.
	code := codeFlow(t, e, e.authQuery(verifier)).Query().Get("code")
	if st, out := e.exchange(code, verifier, good+"/"); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("token with another redirect_uri: %d %v", st, out)
	}
	// An unknown client is refused the same way.
	q := e.authQuery(verifier)
	q.Set("client_id", "nobody")
	resp, _ := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(e.hub.URL + "/oidc/authorize?" + q.Encode())
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}
}

// idToken gets an ID token by the code flow.
func (e *env) idToken() string {
	code := codeFlow(e.t, e, e.authQuery(verifier)).Query().Get("code")
	st, out := e.exchange(code, verifier, e.appURL+"callback")
	if st != 200 {
		e.t.Fatalf("token: %d %v", st, out)
	}
	return out["id_token"].(string)
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(h, &hdr)
	return hdr.Kid
}

// verifierAt is go-oidc's verifier on jwksURL with the clock at now().
func verifierAt(issuer, jwksURL string, now func() time.Time) *gooidc.IDTokenVerifier {
	ks := gooidc.NewRemoteKeySet(context.Background(), jwksURL)
	return gooidc.NewVerifier(issuer, ks, &gooidc.Config{ClientID: "erp", Now: now})
}

func TestKeyRotationKeepsOldTokensVerifiable(t *testing.T) {
	clk := idtest.NewClock(time.Now())
	e := newEnv(t, opts{now: clk.Now})
	ctx := context.Background()
	old := e.idToken()
	if err := e.prov.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Published at once, signing only after key_propagation (1m).
	if tok := e.idToken(); kidOf(t, tok) != kidOf(t, old) {
		t.Fatal("the new key signed before its propagation time")
	}
	clk.Advance(61 * time.Second)
	newer := e.idToken()
	if kidOf(t, newer) == kidOf(t, old) {
		t.Fatal("rotation did not change the signing key")
	}
	for name, tok := range map[string]string{"old": old, "new": newer} {
		if _, err := verifierAt(e.hub.URL, e.hub.URL+"/oidc/jwks", clk.Now).Verify(ctx, tok); err != nil {
			t.Fatalf("%s token after rotation: %v", name, err)
		}
	}
	// Once every token of the old key has expired (1h) the key leaves the JWKS.
	clk.Advance(time.Hour + 2*time.Minute)
	_, body := get(t, http.DefaultClient, e.hub.URL+"/oidc/jwks")
	if strings.Contains(body, kidOf(t, old)) || !strings.Contains(body, kidOf(t, newer)) {
		t.Fatalf("JWKS after the old tokens expired: %s", body)
	}
}

func TestTwoProvidersShareKeys(t *testing.T) {
	a := newEnv(t, opts{})
	b := newEnv(t, opts{b: a.b, sim: a.sim})
	ctx := context.Background()
	tok := a.idToken()
	// Verified with replica B's JWKS (B's own issuer differs in tests: the
	// issuer check uses A's).
	if _, err := verifierAt(a.hub.URL, b.hub.URL+"/oidc/jwks", time.Now).Verify(ctx, tok); err != nil {
		t.Fatalf("A's token on B's keys: %v", err)
	}
	_, ja := get(t, http.DefaultClient, a.hub.URL+"/oidc/jwks")
	_, jb := get(t, http.DefaultClient, b.hub.URL+"/oidc/jwks")
	if ja != jb {
		t.Fatalf("replicas publish different keys:\n%s\n%s", ja, jb)
	}
	// A rotation on A is seen by B once its cache (10 s) refreshes; force it by
	// a new env on the same bucket.
	if err := a.prov.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	c := newEnv(t, opts{b: a.b, sim: a.sim})
	_, jc := get(t, http.DefaultClient, c.hub.URL+"/oidc/jwks")
	var set struct{ Keys []map[string]any }
	_ = json.Unmarshal([]byte(jc), &set)
	if len(set.Keys) != 2 {
		t.Fatalf("replica C publishes %d keys after A's rotation, want 2: %s", len(set.Keys), jc)
	}
}

// TestDiscovery: what go-oidc reads, and what it does not accept.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, opts{})
	p, err := gooidc.NewProvider(context.Background(), e.hub.URL)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Methods []string `json:"code_challenge_methods_supported"`
		ACR     []string `json:"acr_values_supported"`
	}
	_ = p.Claims(&d)
	if p.Endpoint().TokenURL != e.hub.URL+"/oidc/token" || len(d.Methods) != 1 || d.Methods[0] != "S256" || len(d.ACR) != 2 {
		t.Fatalf("discovery: %+v %+v", p.Endpoint(), d)
	}
}

func (e *env) tokenRequest(form url.Values) (int, map[string]any) {
	req, _ := http.NewRequest("POST", e.hub.URL+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("erp", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestRefreshToken: with refresh_token_ttl and scope offline_access, a refresh
// token gives new tokens once (it is rotated); without the scope none is issued.
func TestRefreshToken(t *testing.T) {
	e := newEnv(t, opts{refresh: time.Hour})
	q := e.authQuery(verifier)
	q.Set("scope", "openid offline_access")
	code := codeFlow(t, e, q).Query().Get("code")
	st, out := e.exchange(code, verifier, e.appURL+"callback")
	rt, _ := out["refresh_token"].(string)
	if st != 200 || rt == "" {
		t.Fatalf("no refresh token: %d %v", st, out)
	}
	st, out = e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if st != 200 || out["id_token"] == nil || out["refresh_token"] == nil || out["refresh_token"] == rt {
		t.Fatalf("refresh: %d %v", st, out)
	}
	idt, err := verifierAt(e.hub.URL, e.hub.URL+"/oidc/jwks", time.Now).Verify(context.Background(), out["id_token"].(string))
	if err != nil || idt.Subject != "zhaoliu" || idt.Nonce != "" {
		t.Fatalf("refreshed ID token: %+v, %v", idt, err)
	}
	if st, out = e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("used refresh token accepted: %d %v", st, out)
	}
	code = codeFlow(t, e, e.authQuery(verifier)).Query().Get("code")
	if _, out = e.exchange(code, verifier, e.appURL+"callback"); out["refresh_token"] != nil {
		t.Fatal("refresh token without offline_access")
	}
	// Wrong client secret.
	req, _ := http.NewRequest("POST", e.hub.URL+"/oidc/token", strings.NewReader("grant_type=refresh_token&refresh_token=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("erp", "wrong-secret-wrong-secret")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong secret: %d", resp.StatusCode)
	}
}

// TestReplicasStartingTogetherMakeOneKey: several gateways starting at once on
// empty buckets agree on one first key.
func TestReplicasStartingTogetherMakeOneKey(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	sm := idtest.Sim(t)
	ctx := context.Background()
	kv := func(name string) jetstream.KeyValue { k, _ := b.KV(ctx, name); return k }
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			p, err := oidc.New(oidc.Config{Issuer: "https://hub.example.com", App: "helpdesk", Clients: []oidc.Client{{
				ID: "erp", Secret: secret, RedirectURIs: []string{"https://erp.example.com/cb"}}}},
				oidc.Deps{Keys: kv(bus.BucketOIDCKeys), Store: kv(bus.BucketOIDC), Challenges: kv(bus.BucketAuth), Login: idtest.Login(sm)})
			if err == nil {
				err = p.EnsureKey(ctx)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	l, err := kv(bus.BucketOIDCKeys).ListKeysFiltered(ctx, "key.>")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range l.Keys() {
		n++
	}
	if n != 1 {
		t.Fatalf("%d signing keys after 4 replicas started, want 1", n)
	}
}

func TestConfigValidation(t *testing.T) {
	good := oidc.Client{ID: "erp", Secret: secret, RedirectURIs: []string{"https://erp.example.com/cb"}}
	for _, tc := range []struct {
		name    string
		mod     func(*oidc.Config)
		wantErr string
	}{
		{"good", func(*oidc.Config) {}, ""},
		{"no issuer", func(c *oidc.Config) { c.Issuer = "" }, "oidc.issuer"},
		{"relative issuer", func(c *oidc.Config) { c.Issuer = "/hub" }, "oidc.issuer"},
		{"no app", func(c *oidc.Config) { c.App = "" }, "oidc.app"},
		{"no clients", func(c *oidc.Config) { c.Clients = nil }, "oidc.clients"},
		{"short secret", func(c *oidc.Config) { c.Clients[0].Secret = "short" }, "oidc.clients[0].client_secret"},
		{"bad id", func(c *oidc.Config) { c.Clients[0].ID = "a b" }, "oidc.clients[0].client_id"},
		{"twice", func(c *oidc.Config) { c.Clients = append(c.Clients, c.Clients[0]) }, "oidc.clients[1].client_id"},
		{"no redirect", func(c *oidc.Config) { c.Clients[0].RedirectURIs = nil }, "oidc.clients[0].redirect_uris"},
		{"fragment", func(c *oidc.Config) { c.Clients[0].RedirectURIs = []string{"https://a/cb#x"} }, "oidc.clients[0].redirect_uris[0]"},
		{"refresh too long", func(c *oidc.Config) { c.RefreshTokenTTL = 1000 * time.Hour }, "oidc.refresh_token_ttl"},
		{"rotation below token life", func(c *oidc.Config) { c.KeyRotation = time.Minute }, "oidc.key_rotation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := oidc.Config{Issuer: "https://hub.example.com", App: "helpdesk", Clients: []oidc.Client{good}}
			c.Clients[0].RedirectURIs = append([]string(nil), good.RedirectURIs...)
			tc.mod(&c)
			err := c.Validate()
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr+":")) {
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
