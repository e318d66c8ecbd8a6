package pin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/wecom/oauth"
)

// PagesDeps are what the PIN pages need.
type PagesDeps struct {
	// Login identifies the employee through WeCom OAuth2 (the pages are opened
	// from the WeCom app: a menu link or a message's link).
	Login oauth.Login
	// Sessions is the wxhub_oidc bucket: short page sessions ("pinsess.<id>")
	// and OAuth states ("pinstate.<id>"), shared by every gateway replica.
	Sessions jetstream.KeyValue
	// PublicURL is the hub's public base URL (https://hub.example.com), for
	// the OAuth redirect_uri; it must be the app's trusted domain in WeCom.
	PublicURL string
	// Challenges is the wxhub_auth bucket: with it, /pin/reset lets an
	// employee who forgot the PIN reset it by scanning a QR code with the WeCom
	// app and confirming (the scanlogin connector binds the scan). nil: only an
	// admin resets.
	Challenges jetstream.KeyValue
	// AdminAuthorize decides whether a request may reset a PIN (the gateway's
	// API key check, limited to pin.admin_keys). nil: the endpoint answers 403.
	AdminAuthorize func(r *http.Request) bool
	Logger         *zap.Logger
}

// Session lifetime of the PIN pages after the WeCom OAuth.
const sessionTTL = 10 * time.Minute

// Handler serves the PIN pages and the admin reset; mount it on
// "/pin/" and "POST /api/v1/pin/reset":
//
//	GET  /pin/          set or change the PIN (WeCom OAuth first)
//	GET  /pin/verify    enter the PIN (a connector links here before showing payroll)
//	GET  /pin/callback  WeCom's OAuth return
//	POST /pin/set, POST /pin/verify
//	GET  /pin/reset     forgot the PIN: scan a QR code with the WeCom app to reset it
//	POST /api/v1/pin/reset {"user": "zhangsan"}   admin only
func (s *Store) Handler(d PagesDeps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	p := &pages{s: s, d: d, log: d.Logger.Named("pin")}
	m := http.NewServeMux()
	m.HandleFunc("GET /pin/{$}", p.setPage)
	m.HandleFunc("GET /pin/verify", p.verifyPage)
	m.HandleFunc("GET /pin/callback", p.callback)
	m.HandleFunc("POST /pin/set", p.set)
	m.HandleFunc("POST /pin/verify", p.verify)
	m.HandleFunc("POST /api/v1/pin/reset", p.reset)
	m.HandleFunc("GET /pin/reset", p.scanResetPage)
	m.HandleFunc("GET /pin/reset/status", p.scanResetStatus)
	return m
}

type pages struct {
	s   *Store
	d   PagesDeps
	log *zap.Logger
}

type session struct {
	User    string    `json:"user"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"exp"`
}

type oauthState struct {
	Next    string    `json:"next"`
	Expires time.Time `json:"exp"`
}

const cookieName = "wxhub_pin"

func (p *pages) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || !validID(c.Value) {
		return session{}, false
	}
	var s session
	if !getJSON(r.Context(), p.d.Sessions, "pinsess."+c.Value, &s) || !p.s.now().Before(s.Expires) {
		return session{}, false
	}
	return s, true
}

// login sends the browser through WeCom OAuth, coming back to next.
func (p *pages) login(w http.ResponseWriter, r *http.Request, next string) {
	state := randomHex(16)
	data, _ := json.Marshal(oauthState{Next: next, Expires: p.s.now().Add(5 * time.Minute)})
	if _, err := p.d.Sessions.Put(r.Context(), "pinstate."+state, data); err != nil {
		p.page(w, http.StatusServiceUnavailable, PageData{Error: "服务暂不可用，请稍后重试。"})
		return
	}
	http.Redirect(w, r, p.d.Login.URL(strings.TrimSuffix(p.d.PublicURL, "/")+"/pin/callback", state), http.StatusFound)
}

func (p *pages) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	state := r.URL.Query().Get("state")
	var st oauthState
	if !validID(state) || !getJSON(ctx, p.d.Sessions, "pinstate."+state, &st) || !p.s.now().Before(st.Expires) {
		p.page(w, http.StatusBadRequest, PageData{Error: "链接无效或已过期，请从企业微信应用重新打开。"})
		return
	}
	_ = p.d.Sessions.Delete(ctx, "pinstate."+state) // a state is good once
	user, err := p.d.Login.User(ctx, r.URL.Query().Get("code"))
	if err != nil {
		p.log.Info("PIN page login refused", zap.Error(err))
		p.page(w, http.StatusForbidden, PageData{Error: "无法确认您的企业微信身份，请从企业微信应用重新打开。"})
		return
	}
	id := randomHex(16)
	data, _ := json.Marshal(session{User: user, CSRF: randomHex(16), Expires: p.s.now().Add(sessionTTL)})
	if _, err := p.d.Sessions.Put(ctx, "pinsess."+id, data); err != nil {
		p.page(w, http.StatusServiceUnavailable, PageData{Error: "服务暂不可用，请稍后重试。"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/pin/", HttpOnly: true,
		Secure: strings.HasPrefix(p.d.PublicURL, "https:"), SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL.Seconds())})
	http.Redirect(w, r, st.Next, http.StatusSeeOther)
}

func (p *pages) setPage(w http.ResponseWriter, r *http.Request) {
	s, ok := p.session(r)
	if !ok {
		p.login(w, r, "/pin/")
		return
	}
	rec, _, err := p.s.Get(r.Context(), s.User)
	if err != nil {
		p.page(w, http.StatusServiceUnavailable, PageData{Error: "服务暂不可用，请稍后重试。"})
		return
	}
	p.page(w, http.StatusOK, PageData{Mode: "set", User: s.User, CSRF: s.CSRF, HasPIN: rec.HasPIN()})
}

func (p *pages) verifyPage(w http.ResponseWriter, r *http.Request) {
	s, ok := p.session(r)
	if !ok {
		p.login(w, r, "/pin/verify")
		return
	}
	p.page(w, http.StatusOK, PageData{Mode: "verify", User: s.User, CSRF: s.CSRF})
}

// form reads a POST from the session's own page (CSRF token in the form).
func (p *pages) form(w http.ResponseWriter, r *http.Request) (session, bool) {
	s, ok := p.session(r)
	if !ok {
		p.page(w, http.StatusUnauthorized, PageData{Error: "会话已过期，请从企业微信应用重新打开。"})
		return s, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("csrf") != s.CSRF {
		p.page(w, http.StatusForbidden, PageData{Error: "请求无效，请刷新页面后重试。"})
		return s, false
	}
	return s, true
}

func (p *pages) set(w http.ResponseWriter, r *http.Request) {
	s, ok := p.form(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	f := r.PostForm
	show := PageData{Mode: "set", User: s.User, CSRF: s.CSRF}
	rec, _, err := p.s.Get(ctx, s.User)
	if err != nil {
		p.page(w, http.StatusServiceUnavailable, PageData{Error: "服务暂不可用，请稍后重试。"})
		return
	}
	show.HasPIN = rec.HasPIN()
	if rec.HasPIN() {
		// Changing a PIN needs the current one (a lost PIN: the admin resets it).
		if err := p.s.Verify(ctx, s.User, f.Get("current")); err != nil {
			show.Error = verifyMessage(err)
			p.page(w, http.StatusForbidden, show)
			return
		}
	}
	if f.Get("pin") != f.Get("pin2") {
		show.Error = "两次输入的密码不一致。"
		p.page(w, http.StatusBadRequest, show)
		return
	}
	if err := p.s.Set(ctx, s.User, f.Get("pin")); err != nil {
		show.Error = "密码不符合要求：" + strings.TrimPrefix(err.Error(), ErrWeakPIN.Error()+": ")
		if !errors.Is(err, ErrWeakPIN) {
			show.Error = "服务暂不可用，请稍后重试。"
		}
		p.page(w, http.StatusBadRequest, show)
		return
	}
	p.page(w, http.StatusOK, PageData{Mode: "done", User: s.User, Message: "安全密码已设置。"})
}

func (p *pages) verify(w http.ResponseWriter, r *http.Request) {
	s, ok := p.form(w, r)
	if !ok {
		return
	}
	if err := p.s.Verify(r.Context(), s.User, r.PostForm.Get("pin")); err != nil {
		p.page(w, http.StatusForbidden, PageData{Mode: "verify", User: s.User, CSRF: s.CSRF, Error: verifyMessage(err)})
		return
	}
	p.page(w, http.StatusOK, PageData{Mode: "done", User: s.User, Message: "验证成功，请回到企业微信继续操作。"})
}

// VerifyMessage is what the employee is told about a failed verification.
func verifyMessage(err error) string {
	switch {
	case errors.Is(err, ErrNoPIN):
		return "您还没有设置安全密码，请先设置。"
	case errors.Is(err, ErrLocked):
		return "输错次数过多，安全密码已暂时锁定，请稍后再试或联系管理员。"
	case errors.Is(err, ErrWrongPIN):
		return "密码错误（" + strings.TrimPrefix(err.Error(), ErrWrongPIN.Error()+": ") + "）。"
	}
	return "服务暂不可用，请稍后重试。"
}

// VerifyMessage is verifyMessage for the OIDC provider's PIN step.
func VerifyMessage(err error) string { return verifyMessage(err) }

func (p *pages) reset(w http.ResponseWriter, r *http.Request) {
	if p.d.AdminAuthorize == nil || !p.d.AdminAuthorize(r) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "an admin API key (pin.admin_keys) is required"})
		return
	}
	var req struct {
		User string `json:"user"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.User == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"user\": \"<userid>\"}", "field": "user"})
		return
	}
	if err := p.s.Reset(r.Context(), req.User); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": req.User, "status": "reset"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) bool {
	e, err := kv.Get(ctx, key)
	return err == nil && json.Unmarshal(e.Value(), v) == nil
}

func validID(s string) bool {
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

// PageData is the PIN page's content (the OIDC provider renders its PIN step with it).
type PageData struct {
	Mode    string // set, verify, done, or "" (an error only)
	User    string
	CSRF    string
	HasPIN  bool
	Error   string
	Message string
	// Action is the verify form's target (the OIDC provider posts elsewhere).
	Action string
}

func (p *pages) page(w http.ResponseWriter, status int, d PageData) { RenderPage(w, status, d) }

// RenderPage writes the PIN page; the OIDC provider uses it for its PIN step.
func RenderPage(w http.ResponseWriter, status int, d PageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, d); err != nil {
		fmt.Fprint(w, "<p>page error</p>")
	}
}

var pageTmpl = template.Must(template.New("pin").Parse(`<!doctype html>
<html lang="zh-CN"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>安全密码 - wxhub</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:2rem auto;padding:0 1rem}input{display:block;width:100%;font-size:1.4rem;margin:.3rem 0 1rem;padding:.4rem;letter-spacing:.3rem}button{font-size:1.1rem;padding:.5rem 1.5rem}.err{color:#c00}.ok{color:#070}</style>
<h1>安全密码</h1>
{{if .User}}<p>企业微信账号：<b id="user">{{.User}}</b></p>{{end}}
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if .Message}}<p class="ok" id="message">{{.Message}}</p>{{end}}
{{if eq .Mode "set"}}
<form method="post" action="/pin/set" autocomplete="off">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .HasPIN}}<label>当前密码<input type="password" name="current" id="current" inputmode="numeric" required></label>{{end}}
<label>新密码（数字）<input type="password" name="pin" id="pin" inputmode="numeric" required></label>
<label>再输入一次<input type="password" name="pin2" id="pin2" inputmode="numeric" required></label>
<button type="submit" id="submit">保存</button>
</form>
<p>请勿在聊天中发送密码。忘记密码请联系管理员重置。</p>
{{else if eq .Mode "verify"}}
<form method="post" action="{{if .Action}}{{.Action}}{{else}}/pin/verify{{end}}" autocomplete="off">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>请输入安全密码<input type="password" name="pin" id="pin" inputmode="numeric" autofocus required></label>
<button type="submit" id="submit">确认</button>
</form>
{{end}}
</html>
`))
