package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/dashboard"
)

const (
	adminToken  = "admin-token-0123456789"
	viewerToken = "viewer-token-0123456789"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	return bustest.Open(t, bus.Config{})
}

func testConfig() dashboard.Config {
	return dashboard.Config{
		AdminToken: adminToken,
		Users:      []dashboard.User{{Name: "ops", Token: viewerToken, Role: dashboard.RoleViewer}},
		SessionKey: strings.Repeat("k", 32),
		Refresh:    200 * time.Millisecond,
	}
}

// env is a dashboard served on 127.0.0.1 over a fresh embedded bus.
type env struct {
	bus *bus.Bus
	d   *dashboard.Dashboard
	srv *httptest.Server
	reg *prometheus.Registry
}

func newEnv(t *testing.T, opts ...dashboard.Option) *env {
	t.Helper()
	return newEnvConfig(t, testConfig(), opts...)
}

func newEnvConfig(t *testing.T, cfg dashboard.Config, opts ...dashboard.Option) *env {
	t.Helper()
	return newEnvOnBus(t, openBus(t), cfg, opts...)
}

// newEnvOnBus starts the dashboard on a bus the test has already written to.
func newEnvOnBus(t *testing.T, b *bus.Bus, cfg dashboard.Config, opts ...dashboard.Option) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	d, err := dashboard.New(cfg, b, zaptest.NewLogger(t), append([]dashboard.Option{dashboard.WithGatherer(reg)}, opts...)...)
	if err != nil {
		t.Fatalf("dashboard.New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, d.Handler())
	return &env{bus: b, d: d, srv: newServer(t, mux), reg: reg}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// client is a browser-like client: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (e *env) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: e.srv.URL, hc: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// login signs in with token and loads the CSRF token; it fails the test on error.
func (c *client) login(token string) {
	c.t.Helper()
	res := c.form("/dashboard/login", url.Values{"token": {token}})
	if res.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login: status %d, want 303", res.StatusCode)
	}
	var me struct {
		CSRF string `json:"csrf"`
		Role string `json:"role"`
	}
	c.getJSON("/dashboard/api/me", &me)
	c.csrf = me.CSRF
}

func (c *client) form(path string, v url.Values) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.base)
	return c.do(req)
}

func (c *client) do(req *http.Request) *http.Response {
	c.t.Helper()
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	c.t.Cleanup(func() { res.Body.Close() })
	return res
}

func (c *client) get(path string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

func (c *client) post(path, csrf string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, nil)
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	return c.do(req)
}

func (c *client) getJSON(path string, v any) {
	c.t.Helper()
	res := c.get(path)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		c.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
