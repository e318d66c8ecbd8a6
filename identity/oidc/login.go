package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/oauth"
	"github.com/wxhub/wxhub/wecom/qrsvg"
)

const (
	acrWeCom = schemas.ACRWeCom
	acrPIN   = schemas.ACRPIN
	// browserCookie binds a login to the browser that started it.
	browserCookie = "wxhub_oidc"
	// challengeKey is the AuthChallenge.Key of the provider's challenges: no
	// API key reads them through the challenge API (API key names have no ':').
	challengeKey = "oidc:"
)

// login is one authorization request on its way to a code, in wxhub_oidc
// under "login.<ID>".
type login struct {
	ID            string    `json:"id"`
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri"`
	State         string    `json:"state,omitempty"`
	Nonce         string    `json:"nonce,omitempty"`
	Scope         []string  `json:"scope"`
	CodeChallenge string    `json:"code_challenge"`
	NeedPIN       bool      `json:"need_pin,omitempty"`
	PINMaxAge     int64     `json:"pin_max_age,omitempty"` // seconds; 0: ask now
	Browser       string    `json:"browser"`
	CSRF          string    `json:"csrf"`
	Challenge     string    `json:"challenge,omitempty"` // wxhub_auth id of the scan
	User          string    `json:"user,omitempty"`
	Method        string    `json:"method,omitempty"` // wecom_scan or wecom_oauth
	AuthTime      time.Time `json:"auth_time,omitzero"`
	PINAt         time.Time `json:"pin_at,omitzero"`
	Done          bool      `json:"done,omitempty"` // a code was issued
	Expires       time.Time `json:"exp"`
}

// authorize is GET /oidc/authorize (RFC 6749 4.1.1, OIDC Core 3.1.2.1, RFC 7636).
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cl, ok := p.cfg.client(q.Get("client_id"))
	if !ok {
		errorPage(w, http.StatusBadRequest, "unknown client_id")
		return
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(cl.RedirectURIs, redirect) {
		// Never redirect to an address the client did not register.
		p.log.Info("authorize refused: redirect_uri not registered", zap.String("client", cl.ID))
		errorPage(w, http.StatusBadRequest, "redirect_uri is not registered for this client")
		return
	}
	fail := func(code, desc string) {
		http.Redirect(w, r, withQuery(redirect, map[string]string{"error": code, "error_description": desc, "state": q.Get("state")}), http.StatusFound)
	}
	scope := strings.Fields(q.Get("scope"))
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code")
		return
	case !slices.Contains(scope, "openid"):
		fail("invalid_scope", "scope must include openid")
		return
	case q.Get("code_challenge") == "":
		fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case len(q.Get("code_challenge")) != 43:
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier")
		return
	case q.Get("prompt") == "none":
		fail("login_required", "the hub keeps no login session: every login is interactive")
		return
	case q.Get("request") != "" || q.Get("request_uri") != "":
		fail("request_not_supported", "request objects are not supported")
		return
	}
	acrs := strings.Fields(q.Get("acr_values"))
	lg := login{
		ID: randomHex(16), ClientID: cl.ID, RedirectURI: redirect, State: q.Get("state"), Nonce: q.Get("nonce"),
		Scope: scope, CodeChallenge: q.Get("code_challenge"), NeedPIN: cl.RequirePIN || slices.Contains(acrs, acrPIN),
		PINMaxAge: int64(cl.PINMaxAge.Seconds()), CSRF: randomHex(16), Expires: p.now().Add(p.cfg.LoginTTL),
	}
	if lg.NeedPIN && p.d.PIN == nil {
		fail("invalid_request", "this hub has no PIN store: acr "+acrPIN+" cannot be met")
		return
	}
	if ma := q.Get("max_age"); ma != "" {
		// Every login here is fresh; max_age also bounds how old a PIN may be.
		var n int64
		if _, err := fmt.Sscan(ma, &n); err != nil || n < 0 {
			fail("invalid_request", "max_age must be a number of seconds")
			return
		}
		if lg.NeedPIN && n < lg.PINMaxAge {
			lg.PINMaxAge = n
		}
	}
	if c, err := r.Cookie(browserCookie); err == nil && len(c.Value) == 32 {
		lg.Browser = c.Value
	} else {
		lg.Browser = randomHex(16)
		http.SetCookie(w, &http.Cookie{Name: browserCookie, Value: lg.Browser, Path: "/oidc/", HttpOnly: true,
			Secure: strings.HasPrefix(p.cfg.Issuer, "https:"), SameSite: http.SameSiteLaxMode})
	}
	if _, err := p.putLogin(r.Context(), lg, 0); err != nil {
		p.log.Warn("login not stored", zap.Error(err))
		fail("temporarily_unavailable", "try again")
		return
	}
	p.log.Info("oidc login started", zap.String("login", lg.ID), zap.String("client", cl.ID), zap.Bool("pin", lg.NeedPIN))
	if oauth.InWeCom(r.UserAgent()) {
		http.Redirect(w, r, p.d.Login.URL(p.url("/oidc/callback"), lg.ID), http.StatusFound)
		return
	}
	http.Redirect(w, r, "/oidc/login?login="+lg.ID, http.StatusFound)
}

// putLogin writes the login with a compare-and-set on rev (0: create) and
// returns the new revision.
func (p *Provider) putLogin(ctx context.Context, lg login, rev uint64) (uint64, error) {
	data, _ := json.Marshal(lg)
	if rev == 0 {
		return p.d.Store.Create(ctx, "login."+lg.ID, data)
	}
	return p.d.Store.Update(ctx, "login."+lg.ID, data, rev)
}

var errNoLogin = errors.New("oidc: no such login, or another browser's, or expired")

// getLogin returns the login named by the request's "login" parameter, only
// to the browser that started it.
func (p *Provider) getLogin(r *http.Request, id string) (login, uint64, error) {
	var lg login
	if !validHex(id) {
		return lg, 0, errNoLogin
	}
	e, err := p.d.Store.Get(r.Context(), "login."+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return lg, 0, errNoLogin
	}
	if err != nil {
		return lg, 0, err
	}
	if err := json.Unmarshal(e.Value(), &lg); err != nil {
		return lg, 0, errNoLogin
	}
	c, err := r.Cookie(browserCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(lg.Browser)) != 1 || !p.now().Before(lg.Expires) {
		return lg, 0, errNoLogin
	}
	return lg, e.Revision(), nil
}

func validHex(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// loginPage is the desktop page: a QR code to scan with the WeCom app, a link
// to WeCom's web login when configured, and one to WeCom OAuth for a browser
// inside WeCom.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lg, rev, err := p.getLogin(r, r.URL.Query().Get("login"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "登录已过期，请回到原系统重新登录。")
		return
	}
	cl, _ := p.cfg.client(lg.ClientID)
	ch, err := p.challenge(ctx, &lg, rev, cl)
	if err != nil {
		p.log.Warn("login challenge not created", zap.Error(err))
		errorPage(w, http.StatusServiceUnavailable, "登录服务暂不可用，请稍后重试。")
		return
	}
	svg, err := qrsvg.Render(schemas.AuthQRPrefix+ch.ID, 240, "")
	if err != nil {
		errorPage(w, http.StatusInternalServerError, "二维码生成失败。")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = loginTmpl.Execute(w, map[string]any{
		"Client": cl.Name, "Login": lg.ID, "QR": template.HTML(svg), "QRText": schemas.AuthQRPrefix + ch.ID,
		"Expires": ch.ExpiresAt.Format(time.RFC3339), "WebLogin": p.cfg.WeComWebLogin,
	})
}

// challenge returns the login's scan challenge in wxhub_auth, creating a new
// one when there is none or it expired (a reload shows a fresh QR code).
func (p *Provider) challenge(ctx context.Context, lg *login, rev uint64, cl Client) (schemas.AuthChallenge, error) {
	now := p.now()
	if lg.Challenge != "" {
		if ch, _, err := p.readChallenge(ctx, lg.Challenge); err == nil && ch.Reported(now) == schemas.AuthPending {
			return ch, nil
		}
	}
	ch := schemas.NewAuthChallenge(p.cfg.App, cl.ID, cl.Name, challengeKey+cl.ID, now, p.cfg.ChallengeTTL)
	data, _ := json.Marshal(ch)
	if _, err := p.d.Challenges.Create(ctx, ch.ID, data); err != nil {
		return ch, err
	}
	lg.Challenge = ch.ID
	if _, err := p.putLogin(ctx, *lg, rev); err != nil {
		return ch, err
	}
	return ch, nil
}

func (p *Provider) readChallenge(ctx context.Context, id string) (schemas.AuthChallenge, uint64, error) {
	var ch schemas.AuthChallenge
	if !schemas.ValidAuthChallengeID(id) {
		return ch, 0, errNoLogin
	}
	e, err := p.d.Challenges.Get(ctx, id)
	if err != nil {
		return ch, 0, err
	}
	if err := json.Unmarshal(e.Value(), &ch); err != nil {
		return ch, 0, err
	}
	return ch, e.Revision(), nil
}

// loginStatus is GET /oidc/login/status?login= : the page polls it; once the
// scan is confirmed it consumes the challenge and answers where to go next.
func (p *Provider) loginStatus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	lg, rev, err := p.getLogin(r, r.URL.Query().Get("login"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": "expired"})
		return
	}
	if lg.User != "" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "confirmed", "next": "/oidc/pin?login=" + lg.ID})
		return
	}
	if lg.Challenge == "" {
		writeJSON(w, http.StatusOK, map[string]string{"status": schemas.AuthPending})
		return
	}
	ch, chRev, err := p.readChallenge(ctx, lg.Challenge)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": schemas.AuthExpired})
		return
	}
	st := ch.Reported(p.now())
	if st != schemas.AuthConfirmed || ch.Key != challengeKey+lg.ClientID {
		writeJSON(w, http.StatusOK, map[string]string{"status": st})
		return
	}
	// Confirmed: consume it (once, by CAS) and bind the login to the user.
	t := p.now().UTC()
	consumed := ch
	consumed.Status, consumed.ConsumedAt = schemas.AuthConsumed, &t
	data, _ := json.Marshal(consumed)
	if _, err := p.d.Challenges.Update(ctx, ch.ID, data, chRev); err != nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": schemas.AuthScanned}) // a concurrent poll won: poll again
		return
	}
	lg.User, lg.Method, lg.AuthTime = ch.User, schemas.AuthMethodScan, t
	if _, err := p.putLogin(ctx, lg, rev); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error"})
		return
	}
	p.log.Info("oidc login authenticated", zap.String("login", lg.ID), zap.String("user", lg.User), zap.String("method", lg.Method))
	writeJSON(w, http.StatusOK, map[string]string{"status": "confirmed", "next": "/oidc/pin?login=" + lg.ID})
}

// loginWeCom sends the browser through WeCom OAuth (the page's link for a
// browser inside WeCom).
func (p *Provider) loginWeCom(w http.ResponseWriter, r *http.Request) {
	lg, _, err := p.getLogin(r, r.URL.Query().Get("login"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "登录已过期，请回到原系统重新登录。")
		return
	}
	http.Redirect(w, r, p.d.Login.URL(p.url("/oidc/callback"), lg.ID), http.StatusFound)
}

// loginWeComWeb sends a desktop browser to WeCom's web login (when
// Config.WeComWebLogin); it returns to the same callback as OAuth.
func (p *Provider) loginWeComWeb(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.WeComWebLogin {
		http.NotFound(w, r)
		return
	}
	lg, _, err := p.getLogin(r, r.URL.Query().Get("login"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "登录已过期，请回到原系统重新登录。")
		return
	}
	http.Redirect(w, r, p.d.Login.WebURL(p.url("/oidc/callback"), lg.ID), http.StatusFound)
}

// wecomCallback is where WeCom OAuth (and the web login) returns: state is the login id.
func (p *Provider) wecomCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lg, rev, err := p.getLogin(r, r.URL.Query().Get("state"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "登录已过期，请回到原系统重新登录。")
		return
	}
	if lg.User != "" {
		p.next(w, r, lg, rev)
		return
	}
	code := r.URL.Query().Get("code")
	if code == "" {
		p.finishError(w, r, lg, "access_denied", "the user did not authorize")
		return
	}
	user, err := p.d.Login.User(ctx, code)
	if err != nil {
		p.log.Info("oidc WeCom login refused", zap.String("login", lg.ID), zap.Error(err))
		p.finishError(w, r, lg, "access_denied", "WeCom did not confirm a corp member")
		return
	}
	lg.User, lg.Method, lg.AuthTime = user, schemas.AuthMethodOAuth, p.now().UTC()
	if rev, err = p.putLogin(ctx, lg, rev); err != nil {
		errorPage(w, http.StatusServiceUnavailable, "登录服务暂不可用，请稍后重试。")
		return
	}
	p.log.Info("oidc login authenticated", zap.String("login", lg.ID), zap.String("user", lg.User), zap.String("method", lg.Method))
	p.next(w, r, lg, rev)
}

// pinPage is GET /oidc/pin?login= : the step after authentication; without a
// PIN requirement it issues the code at once.
func (p *Provider) pinPage(w http.ResponseWriter, r *http.Request) {
	lg, rev, err := p.getLogin(r, r.URL.Query().Get("login"))
	if err != nil || lg.User == "" {
		errorPage(w, http.StatusBadRequest, "登录已过期，请回到原系统重新登录。")
		return
	}
	p.next(w, r, lg, rev)
}

// next shows the PIN form when the login needs it, else issues the code.
func (p *Provider) next(w http.ResponseWriter, r *http.Request, lg login, rev uint64) {
	ctx := r.Context()
	if lg.NeedPIN && lg.PINAt.IsZero() {
		rec, _, err := p.d.PIN.Get(ctx, lg.User)
		if err != nil {
			errorPage(w, http.StatusServiceUnavailable, "登录服务暂不可用，请稍后重试。")
			return
		}
		if lg.PINMaxAge > 0 && rec.VerifiedWithin(p.now(), time.Duration(lg.PINMaxAge)*time.Second) {
			lg.PINAt = rec.VerifiedAt
		} else {
			d := pin.PageData{Mode: "verify", User: lg.User, CSRF: lg.CSRF, Action: "/oidc/pin?login=" + lg.ID}
			if !rec.HasPIN() {
				d = pin.PageData{User: lg.User, Error: "此系统需要安全密码。请先在企业微信应用中设置安全密码，然后重新登录。"}
			}
			pin.RenderPage(w, http.StatusOK, d)
			return
		}
	}
	p.issueCode(w, r, lg, rev)
}

func (p *Provider) pinSubmit(w http.ResponseWriter, r *http.Request) {
	lg, rev, err := p.getLogin(r, r.URL.Query().Get("login"))
	if err != nil || lg.User == "" || !lg.NeedPIN {
		errorPage(w, http.StatusBadRequest, "登录已过期，请回到原系统重新登录。")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(lg.CSRF)) != 1 {
		errorPage(w, http.StatusForbidden, "请求无效，请刷新页面后重试。")
		return
	}
	if err := p.d.PIN.Verify(r.Context(), lg.User, r.PostForm.Get("pin")); err != nil {
		if !errors.Is(err, pin.ErrWrongPIN) && !errors.Is(err, pin.ErrLocked) && !errors.Is(err, pin.ErrNoPIN) {
			p.log.Warn("PIN check failed", zap.String("login", lg.ID), zap.Error(err))
		}
		pin.RenderPage(w, http.StatusForbidden, pin.PageData{Mode: "verify", User: lg.User, CSRF: lg.CSRF,
			Action: "/oidc/pin?login=" + lg.ID, Error: pin.VerifyMessage(err)})
		return
	}
	lg.PINAt = p.now().UTC()
	p.issueCode(w, r, lg, rev)
}

// grant is what an authorization code stands for, in wxhub_oidc under
// hashKey("code", code), and (for refresh) under hashKey("refresh", token).
type grant struct {
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri,omitempty"`
	CodeChallenge string    `json:"code_challenge,omitempty"`
	Nonce         string    `json:"nonce,omitempty"`
	Scope         []string  `json:"scope"`
	User          string    `json:"user"`
	AMR           []string  `json:"amr"`
	ACR           string    `json:"acr"`
	AuthTime      time.Time `json:"auth_time"`
	Expires       time.Time `json:"exp"`
}

func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, lg login, rev uint64) {
	ctx := r.Context()
	if lg.Done {
		errorPage(w, http.StatusBadRequest, "此登录已完成，请回到原系统。")
		return
	}
	lg.Done = true
	// Marking the login done first makes a code issue at most once per login.
	if _, err := p.putLogin(ctx, lg, rev); err != nil {
		errorPage(w, http.StatusConflict, "此登录已完成，请回到原系统。")
		return
	}
	g := grant{ClientID: lg.ClientID, RedirectURI: lg.RedirectURI, CodeChallenge: lg.CodeChallenge, Nonce: lg.Nonce,
		Scope: lg.Scope, User: lg.User, AMR: []string{lg.Method}, ACR: acrWeCom, AuthTime: lg.AuthTime,
		Expires: p.now().Add(p.cfg.CodeTTL)}
	if !lg.PINAt.IsZero() {
		g.AMR, g.ACR = append(g.AMR, schemas.AuthMethodPIN), acrPIN
	}
	code := randomToken(32)
	data, _ := json.Marshal(g)
	if _, err := p.d.Store.Create(ctx, hashKey("code", code), data); err != nil {
		p.finishError(w, r, lg, "server_error", "code not stored")
		return
	}
	p.log.Info("oidc code issued", zap.String("login", lg.ID), zap.String("client", lg.ClientID), zap.String("user", lg.User), zap.String("acr", g.ACR))
	http.Redirect(w, r, withQuery(lg.RedirectURI, map[string]string{"code": code, "state": lg.State}), http.StatusFound)
}

func (p *Provider) finishError(w http.ResponseWriter, r *http.Request, lg login, code, desc string) {
	http.Redirect(w, r, withQuery(lg.RedirectURI, map[string]string{"error": code, "error_description": desc, "state": lg.State}), http.StatusFound)
}

func withQuery(u string, add map[string]string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u // registered URIs were checked at start-up
	}
	q := pu.Query()
	for k, v := range add {
		if v != "" {
			q.Set(k, v)
		}
	}
	pu.RawQuery = q.Encode()
	return pu.String()
}

func errorPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = errTmpl.Execute(w, msg)
}

var errTmpl = template.Must(template.New("err").Parse(`<!doctype html><meta charset="utf-8"><title>wxhub 登录</title><p id="error">{{.}}</p>`))

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="zh-CN"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>登录 {{.Client}} - wxhub</title>
<style>body{font-family:system-ui,sans-serif;text-align:center;margin:2rem}#qr svg{width:240px;height:240px}#status{color:#555}</style>
<h1>登录 {{.Client}}</h1>
<p>请用企业微信扫一扫（应用菜单中的“扫码登录”），并在手机上确认。</p>
<div id="qr" data-text="{{.QRText}}">{{.QR}}</div>
<p id="status">等待扫码…</p>
{{if .WebLogin}}<p><a id="wecom-web" href="/oidc/login/wecom-web?login={{.Login}}">或使用企业微信扫码登录</a></p>
{{end}}<p><a id="wecom" href="/oidc/login/wecom?login={{.Login}}">在企业微信内打开？点此直接登录</a></p>
<script>
(function poll(){
  fetch("/oidc/login/status?login={{.Login}}",{credentials:"same-origin"}).then(function(r){return r.json()}).then(function(s){
    var st=document.getElementById("status");
    if(s.status==="confirmed"&&s.next){st.textContent="已确认，正在登录…";location.href=s.next;return}
    if(s.status==="scanned"){st.textContent="已扫码，请在手机上确认登录"}
    else if(s.status==="denied"){st.textContent="已取消登录";return}
    else if(s.status==="expired"){st.textContent="二维码已过期，请刷新页面";return}
    setTimeout(poll,1000)
  }).catch(function(){setTimeout(poll,2000)})
})();
</script>
</html>
`))
