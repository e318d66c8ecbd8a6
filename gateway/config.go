package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wxhub/wxhub/gateway/hooks"
	"github.com/wxhub/wxhub/wecom"
)

// ErrConfig is wrapped by every validation error of Config.
var ErrConfig = errors.New("gateway: invalid config")

// Config configures the gateway. Its own keys are the `gateway:` section; the
// loader hands it the sections it serves (wecom, mp, api, auth).
type Config struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8080
	// MaxBodyBytes caps a callback or API body. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TimestampWindow rejects callbacks whose timestamp is further than this from
	// now (replays). Default 2m: WeChat's own retries come within 15 s.
	// nats.duplicate_window must be at least MinDuplicateWindow (2 x this +
	// clock_skew). 0 in YAML keeps the default, negative disables.
	TimestampWindow time.Duration `yaml:"timestamp_window"`
	// ClockSkew is the largest clock difference between the hub's processes
	// (gateway replicas, NATS) that replay protection must still cover.
	// Default 5s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// PublishTimeout bounds the wait for JetStream's ack; WeChat gives up at 5 s.
	// Default 3s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// PassThroughPerMinute caps the pass-through calls of one WeCom API made
	// by this gateway in any 60 s (WeCom's corp ceiling is 10,000 a minute per
	// API: with N gateways give each 10000/N). Default 10000; -1 no cap.
	PassThroughPerMinute int `yaml:"passthrough_per_minute"`
	// PassiveReplyWait is how long, from its arrival, an Official Account's
	// callback (a text, voice, image, follow, scan or menu click) waits for a
	// connector's reply to answer it passively in the callback (WeChat gives up
	// after 5 s); later replies go out as customer-service messages. Default 4s,
	// at most 4.5s; negative: never wait (every reply is custom-sent).
	PassiveReplyWait time.Duration `yaml:"passive_reply_wait"`
	// PublicURL is the hub's address as connectors and webhooks reach it
	// (https://hub.example.com): inbound media events carry
	// <public_url>/api/v1/media/<app>/<media_id>. Default auth.public_url;
	// empty: the path alone.
	PublicURL string `yaml:"public_url"`

	WeCom wecom.Config   `yaml:"-"` // the wecom: section
	MP    wecom.MPConfig `yaml:"-"` // the mp: section
	API   APIConfig      `yaml:"-"` // the api: section
	Auth  AuthConfig     `yaml:"-"` // the auth: section
	Hooks hooks.Config   `yaml:"-"` // the hooks: section (POST /api/v1/hooks/{name})
}

// APIConfig (the `api:` section) holds the keys of push-API and drop-in clients.
type APIConfig struct {
	Keys []APIKey `yaml:"keys"`
}

// APIKey is one client of POST /api/v1/messages and of the drop-in /cgi-bin endpoints.
type APIKey struct {
	Name string   `yaml:"name"`
	Key  string   `yaml:"key"`
	Apps []string `yaml:"apps"` // apps it may send through; "*" for all
	// PassThrough lists the other WeCom APIs (paths under /cgi-bin/, e.g.
	// "user/get", "department/*") this client may call through the drop-in
	// base URL with the hub's token. Default none.
	PassThrough []string `yaml:"passthrough"`
	// Admin lets the key read the status of every message
	// (GET /api/v1/messages/{id}); other keys read only their own. Default false.
	Admin bool `yaml:"admin"`
}

// AuthConfig (the `auth:` section) configures scan-to-login (POST /api/v1/auth/challenges, the scanlogin
// connector) and WeCom OAuth2 login (/api/v1/auth/oauth/callback). See docs/identity.md.
type AuthConfig struct {
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

// WithDefaults fills every zero field with its default.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.TimestampWindow == 0 {
		c.TimestampWindow = 2 * time.Minute
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 3 * time.Second
	}
	if c.PassThroughPerMinute == 0 {
		c.PassThroughPerMinute = 10000
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = 5 * time.Second
	}
	if c.PassiveReplyWait == 0 {
		c.PassiveReplyWait = 4 * time.Second
	}
	c.WeCom = c.WeCom.WithDefaults()
	c.MP = c.MP.WithDefaults()
	a := &c.Auth
	if a.Issuer == "" {
		a.Issuer = "wxhub"
	}
	if a.ChallengeTTL == 0 {
		a.ChallengeTTL = 2 * time.Minute
	}
	if a.AssertionTTL == 0 {
		a.AssertionTTL = 60 * time.Second
	}
	if a.OAuthAuthorizeURL == "" {
		a.OAuthAuthorizeURL = "https://open.weixin.qq.com/connect/oauth2/authorize"
	}
	if a.SSOLoginURL == "" {
		a.SSOLoginURL = "https://login.work.weixin.qq.com/wwlogin/sso/login"
	}
	return c
}

// MinDuplicateWindow is the shortest duplicate window of WXHUB_IN that stops
// every replay the timestamp check lets through: a request stamped
// now+TimestampWindow passes until its stamp is TimestampWindow old, that is
// 2 x TimestampWindow after its first receipt, plus the clock skew between
// replicas. 0 when the timestamp check is disabled.
func (c Config) MinDuplicateWindow() time.Duration {
	c = c.WithDefaults()
	if c.TimestampWindow < 0 {
		return 0
	}
	return 2*c.TimestampWindow + max(c.ClockSkew, 0)
}

// Validate reports the first problem as "gateway: invalid config: <key>: <problem>",
// with keys of the gateway, api and auth sections.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func (c Config) validate() error {
	if c.MaxBodyBytes < 1024 {
		return fmt.Errorf("gateway.max_body_bytes: must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout > 4*time.Second {
		return fmt.Errorf("gateway.publish_timeout: must be in (0, 4s]: WeChat gives up after 5 s, got %s", c.PublishTimeout)
	}
	if c.PassiveReplyWait > 4500*time.Millisecond {
		return fmt.Errorf("gateway.passive_reply_wait: at most 4.5s: WeChat gives up after 5 s, got %s", c.PassiveReplyWait)
	}
	if c.ClockSkew < 0 {
		return fmt.Errorf("gateway.clock_skew: must not be negative, got %s", c.ClockSkew)
	}
	if c.PublicURL != "" && !isHTTPURL(c.PublicURL) {
		return fmt.Errorf("gateway.public_url: must be an absolute http(s) URL, got %q", c.PublicURL)
	}
	apps := c.WeCom.Names()
	for _, a := range c.MP.Accounts {
		apps[a.Name] = true // a key may send through Official Accounts too
	}
	keys := map[string]bool{}
	for i, k := range c.API.Keys {
		key := fmt.Sprintf("api.keys[%d]", i)
		if k.Name == "" {
			return fmt.Errorf("%s.name: is required", key)
		}
		if len(k.Key) < 8 {
			return fmt.Errorf("%s.key: must be at least 8 characters", key)
		}
		if keys[k.Key] {
			return fmt.Errorf("%s.key: is used by another key", key)
		}
		keys[k.Key] = true
		if len(k.Apps) == 0 {
			return fmt.Errorf("%s.apps: must list at least one app (or \"*\")", key)
		}
		for j, app := range k.Apps {
			if app != "*" && !apps[app] {
				return fmt.Errorf("%s.apps[%d]: no WeCom app named %q (nor Official Account)", key, j, app)
			}
		}
		for j, api := range k.PassThrough {
			if !validPassThrough(api) {
				return fmt.Errorf("%s.passthrough[%d]: %q is not a WeCom API path such as \"user/get\" or \"department/*\"", key, j, api)
			}
		}
	}
	if err := c.Hooks.Validate(); err != nil {
		return fmt.Errorf("hooks%w", err)
	}
	if err := c.Hooks.CheckApps(func(app string) bool { return apps[app] }); err != nil {
		return fmt.Errorf("hooks%w", err)
	}
	return c.validateAuth()
}

// SigningSeed decodes SigningKey; nil when it is empty.
func (a AuthConfig) SigningSeed() ([]byte, error) {
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
func (a AuthConfig) Client(name string) (AuthClient, bool) {
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

func (c Config) validateAuth() error {
	a := c.Auth
	if _, err := a.SigningSeed(); err != nil {
		return invalid("auth.signing_key", "%v", err)
	}
	if a.ChallengeTTL < 10*time.Second {
		return invalid("auth.challenge_ttl", "must be at least 10s, got %s", a.ChallengeTTL)
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
		if !wecom.NamePattern.MatchString(cl.Name) {
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

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}
