package dashboard

import (
	"errors"
	"fmt"
	"time"
)

// ErrConfig wraps every configuration error; the message names the key as
// "dashboard.<key>".
var ErrConfig = errors.New("dashboard: invalid config")

// Roles. A viewer sees everything; only an admin may replay or drop dead letters.
const (
	RoleViewer = "viewer"
	RoleAdmin  = "admin"
)

// User is one person (or team) allowed into the dashboard. Token is what they
// type into the login form; it is compared in constant time and never logged.
type User struct {
	Name  string `yaml:"name"`
	Token string `yaml:"token"` // at least 16 characters; ${ENV} in YAML
	Role  string `yaml:"role"`  // viewer (default) or admin
}

// Config is the `dashboard:` section of wxhub.yaml. The zero value is a
// disabled dashboard (nobody can log in); set AdminToken or Users to enable it.
type Config struct {
	// AdminToken is the simplest way in: one user "admin" with the admin role.
	// Settable as WXHUB_DASHBOARD_ADMIN_TOKEN. At least 16 characters.
	AdminToken string `yaml:"admin_token"`
	// Users beside AdminToken, each with a role. Names must be unique.
	Users []User `yaml:"users"`
	// SessionKey signs session cookies (HMAC-SHA256); at least 32 characters.
	// Empty (default): a random key per process, so sessions end on restart and
	// are not shared between replicas behind one load balancer.
	SessionKey string `yaml:"session_key"`
	// SessionTTL is how long a login lasts. Default 12h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SecureCookie adds the Secure flag to the session cookie; set it when the
	// dashboard is reached over HTTPS (directly or through a proxy). Default false.
	SecureCookie bool `yaml:"secure_cookie"`
	// Refresh is how often the live view (SSE) is updated. Default 2s, at least 200ms.
	Refresh time.Duration `yaml:"refresh"`
	// TraceScan bounds the message tracer: it reads at most this many of the
	// newest messages of each stream. Default 5000, at most 200000.
	TraceScan int `yaml:"trace_scan"`
	// SentMetric is the counter of sends (labels app, result) drawn against the
	// send limits. Default wxhub_sender_sends_total.
	SentMetric string `yaml:"sent_metric"`
}

// Defaults.
const (
	DefaultSessionTTL = 12 * time.Hour
	DefaultRefresh    = 2 * time.Second
	DefaultTraceScan  = 5000
	DefaultSentMetric = "wxhub_sender_sends_total"
	adminUserName     = "admin"
	minTokenLen       = 16
	minSessionKeyLen  = 32
)

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.TraceScan == 0 {
		c.TraceScan = DefaultTraceScan
	}
	if c.SentMetric == "" {
		c.SentMetric = DefaultSentMetric
	}
	c.Users = append([]User(nil), c.Users...)
	for i := range c.Users {
		if c.Users[i].Role == "" {
			c.Users[i].Role = RoleViewer
		}
	}
	return c
}

// Enabled reports whether anybody can log in.
func (c Config) Enabled() bool { return c.AdminToken != "" || len(c.Users) > 0 }

// Validate checks c after defaults; errors wrap ErrConfig and name the key.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: dashboard.%s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	if c.AdminToken != "" && len(c.AdminToken) < minTokenLen {
		return bad("admin_token", "must be at least %d characters, got %d", minTokenLen, len(c.AdminToken))
	}
	names := map[string]bool{}
	tokens := map[string]bool{}
	if c.AdminToken != "" {
		names[adminUserName] = true
		tokens[c.AdminToken] = true
	}
	for i, u := range c.Users {
		k := fmt.Sprintf("users[%d]", i)
		switch {
		case u.Name == "":
			return bad(k+".name", "empty")
		case names[u.Name]:
			return bad(k+".name", "%q used twice (admin_token takes the name %q)", u.Name, adminUserName)
		case len(u.Token) < minTokenLen:
			return bad(k+".token", "must be at least %d characters, got %d", minTokenLen, len(u.Token))
		case tokens[u.Token]:
			return bad(k+".token", "is used by another user")
		case u.Role != RoleViewer && u.Role != RoleAdmin:
			return bad(k+".role", "must be %s or %s, got %q", RoleViewer, RoleAdmin, u.Role)
		}
		names[u.Name] = true
		tokens[u.Token] = true
	}
	switch {
	case c.SessionKey != "" && len(c.SessionKey) < minSessionKeyLen:
		return bad("session_key", "must be at least %d characters, got %d", minSessionKeyLen, len(c.SessionKey))
	case c.SessionTTL < time.Minute:
		return bad("session_ttl", "must be at least 1m, got %s", c.SessionTTL)
	case c.Refresh < 200*time.Millisecond:
		return bad("refresh", "must be at least 200ms, got %s", c.Refresh)
	case c.TraceScan < 1 || c.TraceScan > 200000:
		return bad("trace_scan", "must be in 1..200000, got %d", c.TraceScan)
	}
	return nil
}

// users returns every user, AdminToken first.
func (c Config) users() []User {
	var us []User
	if c.AdminToken != "" {
		us = append(us, User{Name: adminUserName, Token: c.AdminToken, Role: RoleAdmin})
	}
	return append(us, c.Users...)
}
