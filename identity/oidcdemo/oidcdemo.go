// Package oidcdemo is a sample legacy web app that logs its users in through
// wxhub's OIDC provider with nothing but off-the-shelf libraries
// (github.com/coreos/go-oidc/v3 and golang.org/x/oauth2): authorization code
// flow with PKCE and a nonce, ID token verified against the hub's JWKS
// (signature, issuer, audience, expiry, nonce). `wxhub demo` mounts it; it is
// also what the provider's tests log in with.
package oidcdemo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// Config of the sample client.
type Config struct {
	// Issuer is the hub's OIDC issuer (http://127.0.0.1:8080). Required.
	Issuer string
	// ClientID and ClientSecret as registered in the hub's oidc.clients. Required.
	ClientID, ClientSecret string
	// BaseURL is this app's address as browsers see it, ending in "/"
	// (http://127.0.0.1:8080/demo/oidc/); its redirect URI is BaseURL+"callback".
	BaseURL string
	// Title is the page heading. Default "示例系统 (OIDC)".
	Title string
	// ACRValues, if set, is sent as acr_values (e.g. urn:wxhub:acr:pin).
	ACRValues string
	// HTTPClient for discovery, token and JWKS calls. Default http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock of ID token checks (tests). Default time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// App is the sample client: an http.Handler for "/", "/login", "/callback"
// and "/logout" below BaseURL's path (mount it with http.StripPrefix).
type App struct {
	cfg Config
	log *zap.Logger

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use: the hub may start after us
	pending  map[string]pending
	sessions map[string]Session
}

type pending struct {
	state, nonce, verifier string
	expires                time.Time
}

// Session is a logged-in user as the app knows it from the verified ID token.
type Session struct {
	Subject  string
	ACR      string
	AMR      []string
	AuthTime time.Time
	Name     string
}

// New returns the sample app; discovery happens on the first login.
func New(cfg Config) (*App, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.ClientSecret == "" || !strings.HasSuffix(cfg.BaseURL, "/") {
		return nil, errors.New("oidcdemo: Issuer, ClientID, ClientSecret and BaseURL (ending in /) are required")
	}
	if cfg.Title == "" {
		cfg.Title = "示例系统 (OIDC)"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &App{cfg: cfg, log: cfg.Logger.Named("oidcdemo"), pending: map[string]pending{}, sessions: map[string]Session{}}, nil
}

func (a *App) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, a.cfg.HTTPClient)
}

func (a *App) discover(ctx context.Context) (*oidc.Provider, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.provider != nil {
		return a.provider, nil
	}
	p, err := oidc.NewProvider(a.ctx(ctx), a.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	a.provider = p
	return p, nil
}

func (a *App) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: a.cfg.ClientID, ClientSecret: a.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: a.cfg.BaseURL + "callback", Scopes: []string{oidc.ScopeOpenID, "profile"},
	}
}

// ServeHTTP serves the app.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "":
		a.home(w, r)
	case "login":
		a.login(w, r)
	case "callback":
		a.callback(w, r)
	case "logout":
		if c, err := r.Cookie("demo_session"); err == nil {
			a.mu.Lock()
			delete(a.sessions, c.Value)
			a.mu.Unlock()
		}
		http.Redirect(w, r, a.cfg.BaseURL, http.StatusSeeOther)
	default:
		http.NotFound(w, r)
	}
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	p, err := a.discover(r.Context())
	if err != nil {
		a.log.Warn("OIDC discovery failed", zap.Error(err))
		http.Error(w, "the hub's OIDC provider is not reachable", http.StatusBadGateway)
		return
	}
	pd := pending{state: random(), nonce: random(), verifier: oauth2.GenerateVerifier(), expires: a.cfg.Now().Add(10 * time.Minute)}
	a.mu.Lock()
	a.pending[pd.state] = pd
	a.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pd.verifier), oidc.Nonce(pd.nonce)}
	if a.cfg.ACRValues != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", a.cfg.ACRValues))
	}
	http.SetCookie(w, &http.Cookie{Name: "demo_state", Value: pd.state, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, a.oauth(p).AuthCodeURL(pd.state, opts...), http.StatusFound)
}

func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	ctx := a.ctx(r.Context())
	q := r.URL.Query()
	c, err := r.Cookie("demo_state")
	a.mu.Lock()
	pd, ok := a.pending[q.Get("state")]
	delete(a.pending, q.Get("state"))
	p := a.provider
	a.mu.Unlock()
	switch {
	case err != nil || !ok || c.Value != q.Get("state") || a.cfg.Now().After(pd.expires) || p == nil:
		http.Error(w, "login state mismatch: start again", http.StatusBadRequest)
		return
	case q.Get("error") != "":
		http.Error(w, "login failed: "+q.Get("error")+": "+q.Get("error_description"), http.StatusForbidden)
		return
	}
	tok, err := a.oauth(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pd.verifier))
	if err != nil {
		a.log.Info("code exchange failed", zap.Error(err))
		http.Error(w, "code exchange failed", http.StatusBadGateway)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	// Verify checks the signature against the JWKS, iss, aud (our client id) and exp.
	idt, err := p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID, Now: a.cfg.Now}).Verify(ctx, raw)
	if err != nil {
		a.log.Info("ID token refused", zap.Error(err))
		http.Error(w, "ID token refused: "+err.Error(), http.StatusForbidden)
		return
	}
	if idt.Nonce != pd.nonce {
		http.Error(w, "ID token refused: nonce mismatch", http.StatusForbidden)
		return
	}
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
		AT  int64    `json:"auth_time"`
	}
	_ = idt.Claims(&claims)
	s := Session{Subject: idt.Subject, ACR: claims.ACR, AMR: claims.AMR, AuthTime: time.Unix(claims.AT, 0)}
	if ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		var extra struct {
			Name string `json:"name"`
		}
		_ = ui.Claims(&extra)
		s.Name = extra.Name
	}
	id := random()
	a.mu.Lock()
	a.sessions[id] = s
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "demo_session", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, a.cfg.BaseURL, http.StatusSeeOther)
}

// Session returns the session of a request's cookie.
func (a *App) Session(r *http.Request) (Session, bool) {
	c, err := r.Cookie("demo_session")
	if err != nil {
		return Session{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[c.Value]
	return s, ok
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	s, ok := a.Session(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = homeTmpl.Execute(w, map[string]any{"Title": a.cfg.Title, "LoggedIn": ok, "S": s,
		"AMR": strings.Join(s.AMR, ", "), "Base": a.cfg.BaseURL})
}

var homeTmpl = template.Must(template.New("home").Parse(`<!doctype html>
<html lang="zh-CN"><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto}</style>
<h1>{{.Title}}</h1>
{{if .LoggedIn}}<p id="who">已登录：<b id="sub">{{.S.Subject}}</b>{{if .S.Name}}（{{.S.Name}}）{{end}}</p>
<p>acr: <code id="acr">{{.S.ACR}}</code>, amr: <code id="amr">{{.AMR}}</code></p>
<p><a href="{{.Base}}logout">退出</a></p>
{{else}}<p><a id="login" href="{{.Base}}login">用企业微信登录</a></p>{{end}}
</html>
`))

// String describes the app for logs.
func (a *App) String() string {
	return fmt.Sprintf("oidcdemo(%s at %s)", a.cfg.ClientID, a.cfg.BaseURL)
}
