package dashboard_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNothingAnswersWithoutLogin(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantLoc    string
	}{
		{"page", "GET", "/dashboard/", http.StatusSeeOther, "/dashboard/login"},
		{"asset", "GET", "/dashboard/assets/app.js", http.StatusSeeOther, "/dashboard/login"},
		{"unknown path", "GET", "/dashboard/secret", http.StatusSeeOther, "/dashboard/login"},
		{"overview api", "GET", "/dashboard/api/overview", http.StatusUnauthorized, ""},
		{"events api", "GET", "/dashboard/api/events", http.StatusUnauthorized, ""},
		{"dlq api", "GET", "/dashboard/api/dlq", http.StatusUnauthorized, ""},
		{"trace api", "GET", "/dashboard/api/trace?id=x", http.StatusUnauthorized, ""},
		{"replay", "POST", "/dashboard/api/dlq/1/replay", http.StatusUnauthorized, ""},
		{"drop", "POST", "/dashboard/api/dlq/1/drop", http.StatusUnauthorized, ""},
		{"logout", "POST", "/dashboard/logout", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, nil)
			res := c.do(req)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if loc := res.Header.Get("Location"); loc != tt.wantLoc {
				t.Fatalf("Location %q, want %q", loc, tt.wantLoc)
			}
		})
	}
	// The login form and its stylesheet are the only public things.
	for _, p := range []string{"/dashboard/login", "/dashboard/login.css"} {
		if res := c.get(p); res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, want 200", p, res.StatusCode)
		}
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		token      string
		origin     string
		fetchSite  string
		wantStatus int
		wantCookie bool
	}{
		{"admin token", adminToken, "self", "same-origin", http.StatusSeeOther, true},
		{"viewer token", viewerToken, "self", "", http.StatusSeeOther, true},
		{"no origin header (script)", adminToken, "", "", http.StatusSeeOther, true},
		{"wrong token", "not-the-token-at-all", "self", "", http.StatusUnauthorized, false},
		{"empty token", "", "self", "", http.StatusUnauthorized, false},
		{"cross-site origin", adminToken, "http://evil.example", "", http.StatusForbidden, false},
		{"cross-site fetch", adminToken, "", "cross-site", http.StatusForbidden, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client(t)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/dashboard/login", strings.NewReader(url.Values{"token": {tt.token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			switch tt.origin {
			case "self":
				req.Header.Set("Origin", e.srv.URL)
			case "":
			default:
				req.Header.Set("Origin", tt.origin)
			}
			if tt.fetchSite != "" {
				req.Header.Set("Sec-Fetch-Site", tt.fetchSite)
			}
			res := c.do(req)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			var cookie *http.Cookie
			for _, ck := range res.Cookies() {
				if ck.Name == "wxhub_dash" {
					cookie = ck
				}
			}
			if (cookie != nil) != tt.wantCookie {
				t.Fatalf("cookie set %v, want %v", cookie != nil, tt.wantCookie)
			}
			if cookie == nil {
				return
			}
			if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/dashboard/" {
				t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/dashboard/", cookie)
			}
			if strings.Contains(cookie.Value, tt.token) {
				t.Fatal("the cookie carries the token")
			}
			if res := c.get("/dashboard/"); res.StatusCode != http.StatusOK {
				t.Fatalf("page after login: %d", res.StatusCode)
			}
			if res := c.get("/dashboard/assets/app.js"); res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
				t.Fatalf("asset after login: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
			}
		})
	}
}

func TestForgedCookieRejected(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.login(viewerToken)
	u, _ := url.Parse(e.srv.URL + "/dashboard/")
	ck := c.hc.Jar.Cookies(u)[0]
	// Promote the viewer to admin inside the payload; the signature no longer matches.
	payload, sig, _ := strings.Cut(ck.Value, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || !strings.Contains(string(raw), `"viewer"`) {
		t.Fatalf("payload %q: %v", raw, err)
	}
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), `"viewer"`, `"admin"`, 1))) + "." + sig
	c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: forged, Path: "/dashboard/"}})
	if res := c.get("/dashboard/api/me"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged cookie: %d, want 401", res.StatusCode)
	}
}

func TestLoginRateLimited(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	for i := 0; i < 5; i++ {
		if res := c.form("/dashboard/login", url.Values{"token": {"wrong-token-wrong-token"}}); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i, res.StatusCode)
		}
	}
	// Even the right token waits now: the address is guessing.
	if res := c.form("/dashboard/login", url.Values{"token": {adminToken}}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures: %d, want 429", res.StatusCode)
	}
}

func TestPostsNeedCSRFAndRole(t *testing.T) {
	e := newEnv(t)
	admin, viewer := e.client(t), e.client(t)
	admin.login(adminToken)
	viewer.login(viewerToken)
	tests := []struct {
		name       string
		c          *client
		csrf       string
		path       string
		wantStatus int
	}{
		{"admin without csrf", admin, "", "/dashboard/api/dlq/1/drop", http.StatusForbidden},
		{"admin wrong csrf", admin, "bogus", "/dashboard/api/dlq/1/drop", http.StatusForbidden},
		{"admin with viewer's csrf", admin, viewer.csrf, "/dashboard/api/dlq/1/drop", http.StatusForbidden},
		{"viewer replay", viewer, viewer.csrf, "/dashboard/api/dlq/1/replay", http.StatusForbidden},
		{"viewer drop", viewer, viewer.csrf, "/dashboard/api/dlq/1/drop", http.StatusForbidden},
		{"admin drop missing", admin, admin.csrf, "/dashboard/api/dlq/1/drop", http.StatusNotFound},
		{"admin bad seq", admin, admin.csrf, "/dashboard/api/dlq/abc/replay", http.StatusBadRequest},
		{"viewer logout", viewer, viewer.csrf, "/dashboard/logout", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.c.post(tt.path, tt.csrf)
			if res.StatusCode != tt.wantStatus {
				body, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d (%s), want %d", res.StatusCode, body, tt.wantStatus)
			}
		})
	}
	// Logout cleared the viewer's cookie.
	if res := viewer.get("/dashboard/api/me"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d, want 401", res.StatusCode)
	}
}
