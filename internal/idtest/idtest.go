// Package idtest holds what the identity and directory tests share: the
// simulated corp, a token source on it, a settable clock, a cookie-keeping
// HTTP client that plays one member in the simulator's OAuth page.
package idtest

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/oauth"
	"github.com/wxhub/wxhub/wecom/sim"
)

// Sim starts the demo corp on a free port (no gateway unless set later).
func Sim(t testing.TB) *sim.Server {
	t.Helper()
	cfg := sim.DemoConfig()
	cfg.GatewayURL = ""
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Tokens is a token source on the simulator: gettoken with the app's secret,
// cached until fresh is asked (what the gateway's source does with the KV).
func Tokens(s *sim.Server) oauth.TokenSource {
	c := wecom.NewClient(s.URL())
	var mu sync.Mutex
	cache := map[string]string{}
	return func(ctx context.Context, app string, fresh bool) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok, ok := cache[app]; ok && !fresh {
			return tok, nil
		}
		secret, corp := "", s.Config().CorpID
		for _, a := range s.Config().Apps {
			if a.Name == app {
				secret = a.Secret
				if a.CorpID != "" {
					corp = a.CorpID
				}
			}
		}
		tok, _, err := c.GetToken(ctx, corp, secret)
		if err != nil {
			return "", err
		}
		cache[app] = tok
		return tok, nil
	}
}

// Login is WeCom OAuth for the demo app "helpdesk" on the simulator.
func Login(s *sim.Server) oauth.Login {
	return oauth.Login{
		AuthorizeURL: s.URL() + "/connect/oauth2/authorize", WebLoginURL: s.URL() + "/wwlogin/sso/login", CorpID: s.Config().CorpID, AgentID: 1000002,
		App: "helpdesk", Token: Tokens(s), Client: wecom.NewClient(s.URL()),
	}
}

// Browser is an HTTP client with cookies that the simulator's OAuth page
// knows as user (the sim_user cookie, as if the WeCom app were logged in).
func Browser(t testing.TB, s *sim.Server, user string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.URL())
	if user != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "sim_user", Value: user, Path: "/"}})
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
