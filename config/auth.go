package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Auth configures scan-to-login (POST /api/v1/auth/challenges, the scanlogin
// connector) and WeCom OAuth2 login (/api/v1/auth/oauth/callback). See docs/identity.md.
type Auth struct {
	// SigningKey is the Ed25519 private key that signs assertions: the base64
	// (standard or URL alphabet) of its 32-byte seed, e.g. `openssl rand -base64 32`.
	// Empty: a random key per process — fine for one gateway, but every gateway
	// replica must share the key, and assertions must be verified against
	// /api/v1/auth/keys of the same process. Never logged.
	SigningKey string `yaml:"signing_key"`
	// Issuer is the assertions' "iss". Default "wxhub".
	Issuer string `yaml:"issuer"`
	// ChallengeTTL is how long a QR code can be scanned and confirmed. Default
	// 2m; at most nats.auth_ttl (the bucket's own TTL, default 10m).
	ChallengeTTL time.Duration `yaml:"challenge_ttl"`
	// AssertionTTL is the assertions' lifetime (exp - iat). Default 60s, at most 10m.
	AssertionTTL time.Duration `yaml:"assertion_ttl"`
	// Confirm: after a scan the user gets a card with 确认登录 / 取消, and the
	// challenge is confirmed only by that click. Default true; false confirms on
	// the scan itself (weaker: a QR code photographed by someone else logs them in).
	Confirm *bool `yaml:"confirm"`
	// PublicURL is the hub's address as browsers reach it (https://hub.example.com),
	// used for the OAuth redirect_uri. Empty: taken from the request's Host.
	PublicURL string `yaml:"public_url"`
	// OAuthAuthorizeURL is WeCom's OAuth2 page for browsers inside WeCom.
	// Default https://open.weixin.qq.com/connect/oauth2/authorize.
	OAuthAuthorizeURL string `yaml:"oauth_authorize_url"`
	// SSOLoginURL is WeCom's web QR login page for desktop browsers.
	// Default https://login.work.weixin.qq.com/wwlogin/sso/login.
	SSOLoginURL string `yaml:"sso_login_url"`
	// Clients are the relying systems. A key may always ask for its own name as
	// client; any other client name must be listed here with that key in Keys.
	Clients []AuthClient `yaml:"clients"`
}

// AuthClient is one system that accepts wxhub assertions.
type AuthClient struct {
	// Name is the assertions' audience ("aud") and the "client" of a challenge.
	Name string `yaml:"name"`
	// Title is what the confirm card shows ("ERP 系统"). Default Name.
	Title string `yaml:"title"`
	// Keys are the api.keys names that may create challenges for this client.
	Keys []string `yaml:"keys"`
	// RedirectURLs are the allowed "return" addresses of the OAuth flow: a return
	// URL must have the same scheme and host and start with one of these paths.
	RedirectURLs []string `yaml:"redirect_urls"`
}

func (a *Auth) defaults() {
	setDefault(&a.Issuer, "wxhub")
	if a.ChallengeTTL == 0 {
		a.ChallengeTTL = 2 * time.Minute
	}
	if a.AssertionTTL == 0 {
		a.AssertionTTL = 60 * time.Second
	}
	if a.Confirm == nil {
		on := true
		a.Confirm = &on
	}
	setDefault(&a.OAuthAuthorizeURL, "https://open.weixin.qq.com/connect/oauth2/authorize")
	setDefault(&a.SSOLoginURL, "https://login.work.weixin.qq.com/wwlogin/sso/login")
}

// SigningSeed decodes SigningKey; nil when it is empty.
func (a Auth) SigningSeed() ([]byte, error) {
	if a.SigningKey == "" {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(strings.TrimSpace(a.SigningKey)); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("must be the base64 of 32 bytes, got %d bytes", len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("is not base64")
}

// Client returns the configured client named name.
func (a Auth) Client(name string) (AuthClient, bool) {
	for _, c := range a.Clients {
		if c.Name == name {
			return c, true
		}
	}
	return AuthClient{}, false
}

// AllowsReturn reports whether u may be the OAuth return address of client c.
func (c AuthClient) AllowsReturn(u string) bool {
	ru, err := url.Parse(u)
	if err != nil || ru.Host == "" {
		return false
	}
	for _, allowed := range c.RedirectURLs {
		au, err := url.Parse(allowed)
		if err != nil {
			continue
		}
		if ru.Scheme == au.Scheme && strings.EqualFold(ru.Host, au.Host) && strings.HasPrefix(ru.Path, au.Path) && ru.User == nil {
			return true
		}
	}
	return false
}

func (c *Config) validateAuth() error {
	a := c.Auth
	if _, err := a.SigningSeed(); err != nil {
		return invalid("auth.signing_key", "%v", err)
	}
	bucketTTL := c.NATS.AuthTTL
	if bucketTTL == 0 {
		bucketTTL = 10 * time.Minute // bus default
	}
	if a.ChallengeTTL < 10*time.Second || a.ChallengeTTL > bucketTTL {
		return invalid("auth.challenge_ttl", "must be between 10s and nats.auth_ttl (%s), got %s", bucketTTL, a.ChallengeTTL)
	}
	if a.AssertionTTL < time.Second || a.AssertionTTL > 10*time.Minute {
		return invalid("auth.assertion_ttl", "must be between 1s and 10m, got %s", a.AssertionTTL)
	}
	for _, kv := range [][2]string{{"auth.public_url", a.PublicURL}, {"auth.oauth_authorize_url", a.OAuthAuthorizeURL}, {"auth.sso_login_url", a.SSOLoginURL}} {
		if kv[1] != "" && !isHTTPURL(kv[1]) {
			return invalid(kv[0], "must be an absolute http(s) URL, got %q", kv[1])
		}
	}
	keyNames := map[string]bool{}
	for _, k := range c.API.Keys {
		keyNames[k.Name] = true
	}
	var seen []string
	for i, cl := range a.Clients {
		key := fmt.Sprintf("auth.clients[%d]", i)
		if !namePattern.MatchString(cl.Name) {
			return invalid(key+".name", "must be 1-32 of a-z 0-9 _ -, got %q", cl.Name)
		}
		if slices.Contains(seen, cl.Name) {
			return invalid(key+".name", "%q is used twice", cl.Name)
		}
		seen = append(seen, cl.Name)
		if len(cl.Keys) == 0 {
			return invalid(key+".keys", "must list at least one api.keys name")
		}
		for j, k := range cl.Keys {
			if !keyNames[k] {
				return invalid(fmt.Sprintf("%s.keys[%d]", key, j), "no api key named %q", k)
			}
		}
		for j, u := range cl.RedirectURLs {
			if !isHTTPURL(u) {
				return invalid(fmt.Sprintf("%s.redirect_urls[%d]", key, j), "must be an absolute http(s) URL, got %q", u)
			}
		}
	}
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
