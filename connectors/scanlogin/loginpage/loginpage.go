// Package loginpage is a sample legacy login page that uses wxhub instead of a
// USB key: its server side creates a challenge with its API key (the browser
// never sees the key), shows the QR code, polls the hub, and verifies the
// assertion against the hub's published key before it says who logged in.
// It also starts the WeCom OAuth2 flow for browsers inside WeCom. The demo
// mounts it at /demo/login/; a real legacy system does the same steps in its
// own language (docs/identity.md).
package loginpage

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/wecom/qrsvg"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

// Config of the sample page.
type Config struct {
	// HubURL is the hub's base URL (http://127.0.0.1:8080). Required.
	HubURL string
	// APIKey is the page's key for the hub's auth API. Required; never sent to the browser.
	APIKey string
	// App is the WeCom app whose members log in. Default "helpdesk".
	App string
	// Client is the page's client name on the hub: the only assertion audience
	// it accepts. Required (accepting any audience would accept assertions
	// issued to other systems).
	Client string
	// Title is the page's heading. Default "ERP 登录".
	Title string
	// PublicURL is this page's address as browsers see it, for the OAuth return
	// (http://127.0.0.1:8080/demo/login/). Empty: no OAuth link.
	PublicURL string
	// Issuer the assertions must carry. Default "wxhub".
	Issuer string
	// Now is the clock for verification (tests). Default time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// Handler serves the page. Mount it under a prefix with http.StripPrefix.
type Handler struct {
	cfg  Config
	hub  *resty.Client
	mux  *http.ServeMux
	mu   sync.Mutex
	keys *scanlogin.KeySet
	at   time.Time
}

// New builds the page.
func New(cfg Config) (*Handler, error) {
	if cfg.HubURL == "" || cfg.APIKey == "" || cfg.Client == "" {
		return nil, errors.New("loginpage: HubURL, APIKey and Client are required")
	}
	if cfg.App == "" {
		cfg.App = "helpdesk"
	}
	if cfg.Title == "" {
		cfg.Title = "ERP 登录"
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "wxhub"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(),
		hub: resty.New().SetBaseURL(strings.TrimSuffix(cfg.HubURL, "/")).SetAuthToken(cfg.APIKey).SetTimeout(5 * time.Second)}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /status", h.status)
	h.mux.HandleFunc("GET /oauth", h.oauth)
	h.mux.HandleFunc("GET /return", h.oauthReturn)
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

type created struct {
	ID       string `json:"id"`
	QRText   string `json:"qr_text"`
	Expires  string `json:"expires_at"`
	OAuthURL string `json:"oauth_url"`
	Error    string `json:"error"`
	Field    string `json:"field"`
}

func (h *Handler) create(r *http.Request, ret string) (created, error) {
	var c created
	body := map[string]string{"app": h.cfg.App, "client": h.cfg.Client}
	if ret != "" {
		body["return"] = ret
	}
	resp, err := h.hub.R().SetContext(r.Context()).SetBody(body).SetResult(&c).SetError(&c).Post("/api/v1/auth/challenges")
	if err != nil {
		return c, fmt.Errorf("loginpage: hub: %w", err)
	}
	if resp.StatusCode() != http.StatusCreated {
		return c, fmt.Errorf("loginpage: hub answered %d: %s %s", resp.StatusCode(), c.Field, c.Error)
	}
	return c, nil
}

type view struct {
	Title, ID, Expires, OAuth, User, Error string
	QR                                     template.HTML
}

func (h *Handler) render(w http.ResponseWriter, status int, v view) {
	v.Title = h.cfg.Title
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.WriteHeader(status)
	if err := page.Execute(w, v); err != nil {
		h.cfg.Logger.Warn("login page render", zap.Error(err))
	}
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	c, err := h.create(r, "")
	if err != nil {
		h.cfg.Logger.Warn("login page: challenge", zap.Error(err))
		h.render(w, http.StatusBadGateway, view{Error: "无法连接 wxhub，请稍后刷新。"})
		return
	}
	svg, err := qrsvg.Render(c.QRText, 240, "login QR code")
	if err != nil {
		h.render(w, http.StatusInternalServerError, view{Error: err.Error()})
		return
	}
	v := view{ID: c.ID, Expires: c.Expires, QR: template.HTML(svg)} // our own SVG, no user input
	if h.cfg.PublicURL != "" {
		v.OAuth = "oauth"
	}
	h.render(w, http.StatusOK, v)
}

// status is what the page's script polls: the hub's state, and once there is an
// assertion, the user it names after verification.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	var st struct {
		Status    string `json:"status"`
		Assertion string `json:"assertion"`
	}
	resp, err := h.hub.R().SetContext(r.Context()).SetResult(&st).Get("/api/v1/auth/challenges/" + url.PathEscape(id))
	out := map[string]string{}
	switch {
	case err != nil:
		out["status"], out["error"] = "error", "hub unreachable"
	case resp.StatusCode() != http.StatusOK:
		out["status"] = "unknown"
	case st.Assertion != "":
		claims, verr := h.verify(r, st.Assertion)
		if verr != nil {
			h.cfg.Logger.Warn("login page: assertion refused", zap.Error(verr))
			out["status"], out["error"] = "error", "assertion did not verify"
			break
		}
		// A real system would now start its own session for claims.Subject.
		out["status"], out["user"] = "confirmed", claims.Subject
	default:
		out["status"] = st.Status
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

func (h *Handler) verify(r *http.Request, token string) (scanlogin.Claims, error) {
	keys, err := h.keySet(r, false)
	if err != nil {
		return scanlogin.Claims{}, err
	}
	aud := h.cfg.Client
	c, err := scanlogin.Verify(token, *keys, h.cfg.Issuer, aud, h.cfg.Now())
	if err != nil && strings.Contains(err.Error(), "unknown key") {
		// The hub may have rotated its key: fetch the set once more.
		if keys, kerr := h.keySet(r, true); kerr == nil {
			c, err = scanlogin.Verify(token, *keys, h.cfg.Issuer, aud, h.cfg.Now())
		}
	}
	return c, err
}

func (h *Handler) keySet(r *http.Request, refresh bool) (*scanlogin.KeySet, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keys != nil && !refresh && time.Since(h.at) < 5*time.Minute {
		return h.keys, nil
	}
	var ks scanlogin.KeySet
	resp, err := h.hub.R().SetContext(r.Context()).SetResult(&ks).Get("/api/v1/auth/keys")
	if err != nil || resp.StatusCode() != http.StatusOK {
		return nil, fmt.Errorf("loginpage: keys: %v (%v)", err, resp)
	}
	h.keys, h.at = &ks, time.Now()
	return h.keys, nil
}

// oauth starts WeCom OAuth2: a challenge whose return is this page's /return.
func (h *Handler) oauth(w http.ResponseWriter, r *http.Request) {
	if h.cfg.PublicURL == "" {
		http.NotFound(w, r)
		return
	}
	c, err := h.create(r, strings.TrimSuffix(h.cfg.PublicURL, "/")+"/return")
	if err != nil || c.OAuthURL == "" {
		h.cfg.Logger.Warn("login page: oauth challenge", zap.Error(err))
		h.render(w, http.StatusBadGateway, view{Error: "无法开始企业微信授权登录。"})
		return
	}
	http.Redirect(w, r, c.OAuthURL, http.StatusFound)
}

func (h *Handler) oauthReturn(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("wxhub_error"); e != "" {
		h.render(w, http.StatusUnauthorized, view{Error: "登录未完成：" + e})
		return
	}
	claims, err := h.verify(r, q.Get("wxhub_assertion"))
	if err != nil {
		h.render(w, http.StatusUnauthorized, view{Error: "登录凭证无效。"})
		return
	}
	h.render(w, http.StatusOK, view{User: claims.Subject})
}
