package wecom

import (
	"fmt"
	"regexp"
	"strings"
)

// Default API bases.
const (
	DefaultAPIBase   = "https://qyapi.weixin.qq.com"
	DefaultMPAPIBase = "https://api.weixin.qq.com"
)

// Config is the `wecom:` section: the corp and its apps. The gateway serves
// their callbacks and the sender sends through them. A hub may serve several
// corps (corps[]); corp_id + apps at the top is the first one (see corps.go).
type Config struct {
	APIBase string      `yaml:"api_base"` // default https://qyapi.weixin.qq.com
	CorpID  string      `yaml:"corp_id"`
	Apps    []AppConfig `yaml:"apps"`
	// Corps are further enterprise accounts. After WithDefaults, Apps holds
	// every corp's apps (each with its CorpID) and CorpID is the first corp's.
	Corps []CorpConfig `yaml:"corps"`

	flat int // WithDefaults ran: the first flat-1 Apps are the top-level ones
}

// AppConfig is one WeCom self-built app (自建应用).
type AppConfig struct {
	Name string `yaml:"name"` // -> /wecom/{name}/callback; unique across corps
	// CorpID is the app's corp, filled by Config.WithDefaults from its section.
	CorpID         string `yaml:"-"`
	AgentID        int64  `yaml:"agent_id"`
	Secret         string `yaml:"secret"`
	Token          string `yaml:"token"`
	EncodingAESKey string `yaml:"encoding_aes_key"`
}

// MPConfig is the `mp:` section: the Official Accounts.
type MPConfig struct {
	// APIBase is the Official Account API (token, customer-service and template
	// messages). Default https://api.weixin.qq.com; the simulator's address in the demo.
	APIBase  string          `yaml:"api_base"`
	Accounts []AccountConfig `yaml:"accounts"`
}

// AccountConfig is one WeChat Official Account (服务号).
type AccountConfig struct {
	Name  string `yaml:"name"` // -> /mp/{name}/callback
	AppID string `yaml:"app_id"`
	// Secret is the AppSecret, for replies (customer-service and template
	// messages). Empty: the account only receives, and replies to it fail as
	// addressed to an unknown app.
	Secret         string `yaml:"secret"`
	Token          string `yaml:"token"`
	EncodingAESKey string `yaml:"encoding_aes_key"`
	// PlainText accepts unencrypted (明文模式) callbacks, signed with token only.
	PlainText bool `yaml:"plain_text"`
}

// WithDefaults fills the API base and flattens the corps (see Config.Corps).
func (c Config) WithDefaults() Config {
	if c.APIBase == "" {
		c.APIBase = DefaultAPIBase
	}
	return c.flatten()
}

// WithDefaults fills the API base.
func (c MPConfig) WithDefaults() MPConfig {
	if c.APIBase == "" {
		c.APIBase = DefaultMPAPIBase
	}
	return c
}

// App returns the app named name.
func (c Config) App(name string) (AppConfig, bool) {
	for _, a := range c.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return AppConfig{}, false
}

// Account returns the Official Account named name.
func (c MPConfig) Account(name string) (AccountConfig, bool) {
	for _, a := range c.Accounts {
		if a.Name == name {
			return a, true
		}
	}
	return AccountConfig{}, false
}

// NamePattern is what an app or account name may be: it is part of URLs and
// NATS subjects.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate reports the first problem as "wecom.<key>: <problem>".
func (c Config) Validate() error {
	if !isHTTP(c.APIBase) {
		return fmt.Errorf("wecom.api_base: must be an http(s) URL, got %q", c.APIBase)
	}
	top := c.topApps()
	if len(top) > 0 && c.CorpID == "" {
		return fmt.Errorf("wecom.corp_id: is required when wecom.apps is set")
	}
	seen := map[string]bool{}
	if err := checkApps("wecom.apps", top, seen); err != nil {
		return err
	}
	return c.validateCorps(seen)
}

func checkApps(prefix string, apps []AppConfig, seen map[string]bool) error {
	for i, a := range apps {
		key := fmt.Sprintf("%s[%d]", prefix, i)
		if err := checkName(key, a.Name, seen); err != nil {
			return err
		}
		if a.AgentID <= 0 {
			return fmt.Errorf("%s.agent_id: must be a positive number", key)
		}
		if a.Secret == "" {
			return fmt.Errorf("%s.secret: is required", key)
		}
		if err := checkCallback(key, a.Token, a.EncodingAESKey); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports the first problem as "mp.<key>: <problem>". taken holds
// the names already used by WeCom apps: one name space for both.
func (c MPConfig) Validate(taken map[string]bool) error {
	if !isHTTP(c.APIBase) {
		return fmt.Errorf("mp.api_base: must be an http(s) URL, got %q", c.APIBase)
	}
	seen := map[string]bool{}
	for k := range taken {
		seen[k] = true
	}
	for i, a := range c.Accounts {
		key := fmt.Sprintf("mp.accounts[%d]", i)
		if err := checkName(key, a.Name, seen); err != nil {
			return err
		}
		if a.AppID == "" {
			return fmt.Errorf("%s.app_id: is required", key)
		}
		if a.PlainText && a.EncodingAESKey == "" {
			if a.Token == "" {
				return fmt.Errorf("%s.token: is required", key)
			}
			continue
		}
		if err := checkCallback(key, a.Token, a.EncodingAESKey); err != nil {
			return err
		}
	}
	return nil
}

// Names are the apps' names.
func (c Config) Names() map[string]bool {
	m := map[string]bool{}
	for _, a := range c.Apps {
		m[a.Name] = true
	}
	return m
}

func checkName(key, name string, seen map[string]bool) error {
	if !NamePattern.MatchString(name) {
		return fmt.Errorf("%s.name: must be 1-32 of a-z 0-9 _ - (it is part of URLs and NATS subjects), got %q", key, name)
	}
	if seen[name] {
		return fmt.Errorf("%s.name: %q is used twice", key, name)
	}
	seen[name] = true
	return nil
}

func checkCallback(key, token, aesKey string) error {
	if token == "" {
		return fmt.Errorf("%s.token: is required", key)
	}
	if len(aesKey) != 43 {
		return fmt.Errorf("%s.encoding_aes_key: must be 43 characters, got %d", key, len(aesKey))
	}
	return nil
}

func isHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
