package dashboard

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
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

// WeComUser is a WeCom member allowed into the dashboard by scanning the login
// QR code with the WeCom app (see docs/identity.md). Their session's user name
// is "wecom:<userid>".
type WeComUser struct {
	UserID string `yaml:"userid"` // the WeCom userid (通讯录 账号); compared ignoring case, as WeCom does
	Role   string `yaml:"role"`   // viewer (default) or admin
}

// Config is the `dashboard:` section of wxhub.yaml. The zero value is a
// disabled dashboard (nobody can log in); set AdminToken or Users to enable it.
type Config struct {
	// AdminToken is the simplest way in: one user "admin" with the admin role.
	// Settable as WXHUB_DASHBOARD_ADMIN_TOKEN. At least 16 characters.
	AdminToken string `yaml:"admin_token"`
	// Users beside AdminToken, each with a role. Names must be unique.
	Users []User `yaml:"users"`
	// WeComUsers may log in with WeCom scan-to-login, each with a role. A member
	// who scans but is not listed is refused. Needs WeComApp and the scanlogin
	// connector running.
	WeComUsers []WeComUser `yaml:"wecom_users"`
	// WeComApp is the WeCom app (a wecom.apps name) whose members scan the
	// dashboard's login QR code. Required with WeComUsers.
	WeComApp string `yaml:"wecom_app"`
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
	wecomUserPrefix   = "wecom:" // session user names of WeComUsers
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
	c.WeComUsers = append([]WeComUser(nil), c.WeComUsers...)
	for i := range c.WeComUsers {
		if c.WeComUsers[i].Role == "" {
			c.WeComUsers[i].Role = RoleViewer
		}
	}
	return c
}

// Enabled reports whether anybody can log in.
func (c Config) Enabled() bool {
	return c.AdminToken != "" || len(c.Users) > 0 || len(c.WeComUsers) > 0
}

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
		case strings.HasPrefix(u.Name, wecomUserPrefix):
			return bad(k+".name", "%q: the prefix %q is reserved for wecom_users", u.Name, wecomUserPrefix)
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
	for i, u := range c.WeComUsers {
		k := fmt.Sprintf("wecom_users[%d]", i)
		switch {
		case !wecomUserID.MatchString(u.UserID):
			return bad(k+".userid", "must be 1-64 of A-Z a-z 0-9 _ - . @, starting with a letter or digit, got %q", u.UserID)
		case names[wecomUserPrefix+strings.ToLower(u.UserID)]:
			return bad(k+".userid", "%q listed twice (WeCom userids ignore case)", u.UserID)
		case u.Role != RoleViewer && u.Role != RoleAdmin:
			return bad(k+".role", "must be %s or %s, got %q", RoleViewer, RoleAdmin, u.Role)
		}
		names[wecomUserPrefix+strings.ToLower(u.UserID)] = true
	}
	if len(c.WeComUsers) > 0 && c.WeComApp == "" {
		return bad("wecom_app", "is required with wecom_users: the WeCom app whose members scan the login code")
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

// wecomUserID is what WeCom allows in a userid (unique ignoring case).
var wecomUserID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// users returns every user, AdminToken first.
func (c Config) users() []User {
	var us []User
	if c.AdminToken != "" {
		us = append(us, User{Name: adminUserName, Token: c.AdminToken, Role: RoleAdmin})
	}
	return append(us, c.Users...)
}

// wecomUsers returns the WeComUsers as session users: named "wecom:<userid>",
// without a token (they cannot use the token form).
func (c Config) wecomUsers() []User {
	us := make([]User, 0, len(c.WeComUsers))
	for _, u := range c.WeComUsers {
		us = append(us, User{Name: wecomUserPrefix + u.UserID, Role: u.Role})
	}
	return us
}
