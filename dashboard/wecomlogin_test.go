package dashboard_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/schemas"
)

// fakeClock is shared by the dashboard and the scanlogin connector.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano()) // real-ish time: the cookie jar expires cookies by the wall clock
	return c
}

func (c *fakeClock) now() time.Time           { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration)  { c.ns.Add(int64(d)) }
func (c *fakeClock) option() dashboard.Option { return dashboard.WithClock(c.now) }

func wecomConfig() dashboard.Config {
	c := testConfig()
	c.WeComApp = "helpdesk"
	c.WeComUsers = []dashboard.WeComUser{{UserID: "ZhangSan", Role: dashboard.RoleAdmin}, {UserID: "lisi"}}
	return c
}

// wecomEnv is a dashboard with WeCom login and the real scanlogin connector
// (with the confirm card) on the same bucket and clock.
type wecomEnv struct {
	*env
	clock *fakeClock
	kv    jetstream.KeyValue
	scan  connectors.Handler
	n     atomic.Int64
}

func newWeComEnv(t *testing.T, cfg dashboard.Config, opts ...dashboard.Option) *wecomEnv {
	t.Helper()
	clock := newFakeClock()
	e := newEnvConfig(t, cfg, append([]dashboard.Option{clock.option()}, opts...)...)
	kv, err := e.bus.KV(testCtx(t), bus.BucketAuth)
	if err != nil {
		t.Fatal(err)
	}
	return &wecomEnv{env: e, clock: clock, kv: kv,
		scan: scanlogin.Handler(kv, scanlogin.Options{Confirm: true, Now: clock.now})}
}

// member is what the WeCom app does for user: scan the code, then press a
// button of the confirm card ("" = only scan). It returns the texts and cards
// the connector answered.
func (w *wecomEnv) member(t *testing.T, app, user, qrText, button string) []connectors.Reply {
	t.Helper()
	ev := func(d schemas.EventData) *schemas.Event {
		d.Channel, d.App, d.User, d.MsgType = schemas.ChannelWeCom, app, user, "event"
		return &schemas.Event{ID: fmt.Sprintf("ev%d", w.n.Add(1)), Data: d}
	}
	out, err := w.scan.Handle(testCtx(t), ev(schemas.EventData{Event: "scancode_waitmsg", EventKey: "login", ScanType: "qrcode", ScanResult: qrText}))
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if button == "" {
		return out
	}
	id := strings.TrimPrefix(qrText, schemas.AuthQRPrefix)
	more, err := w.scan.Handle(testCtx(t), ev(schemas.EventData{Event: "template_card_event", EventKey: button,
		TaskID: schemas.AuthTaskPrefix + id, CardType: "button_interaction", ResponseCode: "rc-" + id}))
	if err != nil {
		t.Fatalf("click %s: %v", button, err)
	}
	return append(out, more...)
}

var dataQR = regexp.MustCompile(`data-qr="(wxhub-login:[0-9a-f]{32})"`)

// startWeCom presses "Log in with WeCom" and returns the QR text of the page.
func (c *client) startWeCom() string {
	c.t.Helper()
	res := c.form("/dashboard/login/wecom", nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/login/wecom" {
		body, _ := io.ReadAll(res.Body)
		c.t.Fatalf("start: %d %s %s", res.StatusCode, res.Header.Get("Location"), body)
	}
	res = c.get("/dashboard/login/wecom")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "<svg") {
		c.t.Fatalf("QR page: %d %s", res.StatusCode, body)
	}
	m := dataQR.FindStringSubmatch(string(body))
	if m == nil {
		c.t.Fatalf("QR page has no data-qr: %s", body)
	}
	return m[1]
}

type wecomStatus struct {
	Status   string `json:"status"`
	Message  string `json:"message"`
	Redirect string `json:"redirect"`
}

func (c *client) pollWeCom() wecomStatus {
	c.t.Helper()
	var st wecomStatus
	c.getJSON("/dashboard/login/wecom/status", &st)
	return st
}

func (c *client) meStatus() (int, string, string) {
	c.t.Helper()
	res := c.get("/dashboard/api/me")
	var me struct{ User, Role, CSRF string }
	_ = json.NewDecoder(res.Body).Decode(&me)
	c.csrf = me.CSRF
	return res.StatusCode, me.User, me.Role
}

func TestWeComLogin(t *testing.T) {
	w := newWeComEnv(t, wecomConfig())
	tests := []struct {
		name     string
		user     string // who scans
		button   string
		advance  time.Duration // clock moves after the scan, before the poll
		want     string        // the status poll's answer
		wantMsg  string
		wantUser string // the session's user; "" = no session
		wantRole string
	}{
		{"admin by userid ignoring case", "zhangsan", scanlogin.KeyConfirm, 0, "ok", "Logged in", "wecom:ZhangSan", dashboard.RoleAdmin},
		{"viewer: role defaults", "lisi", scanlogin.KeyConfirm, 0, "ok", "Logged in", "wecom:lisi", dashboard.RoleViewer},
		{"unknown userid refused", "wangwu", scanlogin.KeyConfirm, 0, "refused", `"wangwu" may not use this dashboard`, "", ""},
		{"cancelled on the card", "zhangsan", scanlogin.KeyDeny, 0, schemas.AuthDenied, "cancelled", "", ""},
		{"scanned, not confirmed", "zhangsan", "", 0, schemas.AuthScanned, "Confirm on the card", "", ""},
		{"confirmed but not fetched in time", "zhangsan", scanlogin.KeyConfirm, dashboard.DefaultChallengeTTL + schemas.AuthFetchGrace, schemas.AuthExpired, "expired", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.clock.advance(time.Minute) // refill the per-address limits of the previous case
			c := w.client(t)
			qr := c.startWeCom()
			if st := c.pollWeCom(); st.Status != schemas.AuthPending {
				t.Fatalf("before the scan: %+v", st)
			}
			w.member(t, "helpdesk", tt.user, qr, tt.button)
			w.clock.advance(tt.advance)
			st := c.pollWeCom()
			if st.Status != tt.want || !strings.Contains(st.Message, tt.wantMsg) {
				t.Fatalf("poll: %+v, want %s with %q", st, tt.want, tt.wantMsg)
			}
			code, user, role := c.meStatus()
			if tt.wantUser == "" {
				if code != http.StatusUnauthorized {
					t.Fatalf("/api/me: %d, want 401", code)
				}
				return
			}
			if code != http.StatusOK || user != tt.wantUser || role != tt.wantRole || st.Redirect != dashboard.Prefix {
				t.Fatalf("/api/me: %d %s %s (redirect %q), want %s %s", code, user, role, st.Redirect, tt.wantUser, tt.wantRole)
			}
			// Logged in once: the challenge is consumed and this browser's login cookie is gone.
			if again := c.pollWeCom(); again.Status != schemas.AuthExpired {
				t.Fatalf("second poll: %+v", again)
			}
			e, err := w.kv.Get(testCtx(t), strings.TrimPrefix(qr, schemas.AuthQRPrefix))
			var ch schemas.AuthChallenge
			if err != nil || json.Unmarshal(e.Value(), &ch) != nil || ch.Status != schemas.AuthConsumed || ch.Client != dashboard.ChallengeClient {
				t.Fatalf("record after login: %v %+v", err, ch)
			}
		})
	}
}

func TestWeComLoginRoles(t *testing.T) {
	w := newWeComEnv(t, wecomConfig())
	c := w.client(t)
	qr := c.startWeCom()
	w.member(t, "helpdesk", "lisi", qr, scanlogin.KeyConfirm)
	if st := c.pollWeCom(); st.Status != "ok" {
		t.Fatalf("poll: %+v", st)
	}
	c.meStatus()
	// A viewer from WeCom is a viewer like any other.
	if res := c.post("/dashboard/api/dlq/1/replay", c.csrf); res.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer replay: %d, want 403", res.StatusCode)
	}
	if res := c.get("/dashboard/"); res.StatusCode != http.StatusOK {
		t.Fatalf("page: %d", res.StatusCode)
	}
	// The WeCom user cannot use the token form (they have no token).
	if res := c.form("/dashboard/login", map[string][]string{"token": {""}}); res.StatusCode == http.StatusSeeOther {
		t.Fatal("empty token logged in")
	}
}

func TestWeComLoginExpired(t *testing.T) {
	w := newWeComEnv(t, wecomConfig(), dashboard.WithChallengeTTL(30*time.Second))
	c := w.client(t)
	qr := c.startWeCom()
	w.clock.advance(30 * time.Second)
	if st := c.pollWeCom(); st.Status != schemas.AuthExpired || !strings.Contains(st.Message, "expired") {
		t.Fatalf("poll after the TTL: %+v", st)
	}
	// A late scan binds nobody: the member is told the code expired.
	out := w.member(t, "helpdesk", "zhangsan", qr, "")
	if len(out) != 1 || !strings.Contains(replyText(out[0]), "过期") {
		t.Fatalf("late scan answered %+v", out)
	}
	// A page reloaded after the TTL offers a new code instead of the dead one.
	c2 := w.client(t)
	c2.startWeCom()
	w.clock.advance(30 * time.Second)
	res := c2.get("/dashboard/login/wecom")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || strings.Contains(string(body), "<svg") || !strings.Contains(string(body), "expired") || !strings.Contains(string(body), `id="wecom-start"`) {
		t.Fatalf("page after expiry: %d %s", res.StatusCode, body)
	}
	if code, _, _ := c.meStatus(); code != http.StatusUnauthorized {
		t.Fatalf("/api/me: %d", code)
	}
}

// The id is printed in the QR code: knowing it must not let another browser
// finish the login.
func TestWeComLoginBoundToBrowser(t *testing.T) {
	w := newWeComEnv(t, wecomConfig())
	victim := w.client(t)
	qr := victim.startWeCom()
	id := strings.TrimPrefix(qr, schemas.AuthQRPrefix)

	thief := w.client(t)
	jar, _ := cookiejar.New(nil)
	thief.hc.Jar = jar
	u, _ := http.NewRequest(http.MethodGet, w.srv.URL+"/dashboard/login/wecom/status", nil)
	jar.SetCookies(u.URL, []*http.Cookie{{Name: "wxhub_dash_wecom", Value: id + ".AAAAAAAAAAAAAAAAAAAAAA", Path: "/dashboard/login/wecom"}})
	w.member(t, "helpdesk", "zhangsan", qr, scanlogin.KeyConfirm)
	if st := thief.pollWeCom(); st.Status != schemas.AuthExpired {
		t.Fatalf("forged cookie: %+v", st)
	}
	if code, _, _ := thief.meStatus(); code != http.StatusUnauthorized {
		t.Fatalf("thief /api/me: %d", code)
	}
	if st := victim.pollWeCom(); st.Status != "ok" {
		t.Fatalf("victim: %+v", st)
	}
}

// The dashboard's record is the one the gateway writes: scanned in another
// app it is refused by the connector, and the dashboard keeps waiting.
func TestWeComLoginForeignApp(t *testing.T) {
	w := newWeComEnv(t, wecomConfig())
	c := w.client(t)
	qr := c.startWeCom()
	out := w.member(t, "otherapp", "zhangsan", qr, "")
	if len(out) != 1 || !strings.Contains(replyText(out[0]), "不属于本应用") {
		t.Fatalf("foreign app scan answered %+v", out)
	}
	if st := c.pollWeCom(); st.Status != schemas.AuthPending {
		t.Fatalf("poll: %+v", st)
	}
}

func TestWeComLoginGuards(t *testing.T) {
	t.Run("cross-site start refused", func(t *testing.T) {
		w := newWeComEnv(t, wecomConfig())
		c := w.client(t)
		req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/dashboard/login/wecom", nil)
		req.Header.Set("Origin", "https://evil.example")
		if res := c.do(req); res.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", res.StatusCode)
		}
	})
	t.Run("QR codes per address are limited", func(t *testing.T) {
		w := newWeComEnv(t, wecomConfig())
		c := w.client(t)
		for i := 0; i < 5; i++ {
			c.startWeCom()
		}
		if res := c.form("/dashboard/login/wecom", nil); res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("6th QR code: %d, want 429", res.StatusCode)
		}
		w.clock.advance(6 * time.Second)
		c.startWeCom()
	})
	t.Run("refusals count as failed logins", func(t *testing.T) {
		w := newWeComEnv(t, wecomConfig())
		c := w.client(t)
		for i := 0; i < 5; i++ {
			qr := c.startWeCom()
			w.member(t, "helpdesk", "wangwu", qr, scanlogin.KeyConfirm)
			if st := c.pollWeCom(); st.Status != "refused" {
				t.Fatalf("poll %d: %+v", i, st)
			}
		}
		// The limit is the token form's: both ways in are closed for a while.
		for _, path := range []string{"/dashboard/login/wecom", "/dashboard/login"} {
			res := c.form(path, map[string][]string{"token": {adminToken}})
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "failed attempts") {
				t.Fatalf("%s after 5 refusals: %d %s, want 429", path, res.StatusCode, body)
			}
		}
	})
	t.Run("no cookie, no page", func(t *testing.T) {
		w := newWeComEnv(t, wecomConfig())
		c := w.client(t)
		if res := c.get("/dashboard/login/wecom"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/login" {
			t.Fatalf("QR page without a challenge: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		if st := c.pollWeCom(); st.Status != schemas.AuthExpired {
			t.Fatalf("status without a challenge: %+v", st)
		}
	})
	t.Run("off without wecom_users", func(t *testing.T) {
		e := newEnv(t)
		c := e.client(t)
		res := c.get("/dashboard/login")
		body, _ := io.ReadAll(res.Body)
		if strings.Contains(string(body), "wecom-start") {
			t.Fatal("login page offers WeCom without wecom_users")
		}
		if res := c.form("/dashboard/login/wecom", nil); res.StatusCode == http.StatusSeeOther && res.Header.Get("Location") == "/dashboard/login/wecom" {
			t.Fatal("WeCom login started without wecom_users")
		}
	})
}

// Only WeCom users: the page shows the WeCom button and no token form.
func TestWeComOnlyLoginPage(t *testing.T) {
	cfg := dashboard.Config{WeComApp: "helpdesk", WeComUsers: []dashboard.WeComUser{{UserID: "zhangsan", Role: dashboard.RoleAdmin}}}
	w := newWeComEnv(t, cfg)
	c := w.client(t)
	res := c.get("/dashboard/login")
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `id="wecom-start"`) || strings.Contains(string(body), `id="token"`) {
		t.Fatalf("login page: %s", body)
	}
	qr := c.startWeCom()
	w.member(t, "helpdesk", "zhangsan", qr, scanlogin.KeyConfirm)
	if st := c.pollWeCom(); st.Status != "ok" {
		t.Fatalf("poll: %+v", st)
	}
	if code, user, _ := c.meStatus(); code != http.StatusOK || user != "wecom:zhangsan" {
		t.Fatalf("/api/me: %d %s", code, user)
	}
}

// replyText is the JSON of a connector's answer, for substring checks.
func replyText(r connectors.Reply) string {
	b, _ := json.Marshal(r.Body)
	return string(b)
}
