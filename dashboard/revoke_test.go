package dashboard_test

import (
	"net/http"
	"net/url"
	"testing"
)

// A cookie copied before logout is refused after it: logout revokes the
// session (wxhub_sessions), it does not only clear the browser's cookie.
func TestLogoutRevokesTheSession(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.login(viewerToken)
	base, _ := url.Parse(e.srv.URL + "/dashboard/")
	stolen := c.hc.Jar.Cookies(base)
	if len(stolen) == 0 {
		t.Fatal("no session cookie after login")
	}
	replay := func() int {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/dashboard/api/me", nil)
		for _, ck := range stolen {
			req.AddCookie(ck)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := replay(); got != http.StatusOK {
		t.Fatalf("copied cookie before logout: %d, want 200", got)
	}
	if res := c.post("/dashboard/logout", c.csrf); res.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if got := replay(); got != http.StatusUnauthorized {
		t.Fatalf("copied cookie after logout: %d, want 401", got)
	}
	// Another login of the same user is a new session and works.
	c2 := e.client(t)
	c2.login(viewerToken)
	if res := c2.get("/dashboard/api/me"); res.StatusCode != http.StatusOK {
		t.Fatalf("new login after logout: %d", res.StatusCode)
	}
}
