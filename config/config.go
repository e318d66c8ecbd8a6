// Package config loads wxhub.yaml: defaults, ${ENV} secrets, WXHUB_<SECTION>_<KEY>
// overrides and validation. A bad config stops start-up with one line that names
// the key and the problem, e.g. "config: wecom.apps[0].encoding_aes_key: must be 43 characters".
package config

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/internal/strictyaml"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/tracing"
)

// Smallest is the smallest configuration (design.md): one WeCom app and one
// API key, secrets from the environment. docs/configuration.md quotes it.
//
//go:embed smallest.yaml
var Smallest []byte

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("config")

// Config is the whole wxhub.yaml. Its zero value plus Defaults() is a valid
// single-process hub once wecom and api are filled in.
type Config struct {
	NATS    bus.Config `yaml:"nats"` // see bus.Config for every key and default
	Gateway Gateway    `yaml:"gateway"`
	WeCom   WeCom      `yaml:"wecom"`
	MP      MP         `yaml:"mp"`
	API     API        `yaml:"api"`
	// Router holds the routing rules; see router.Config. Reloaded without restart.
	Router router.Config `yaml:"router"`
	// Sender: limits, retries, quiet hours; see sender.Config. Its corp id and
	// apps come from the wecom section.
	Sender sender.Config `yaml:"sender"`
	// Connectors: the built-in and reference connectors.
	Connectors Connectors `yaml:"connectors"`
	// Dashboard: the operations page at /dashboard/; off until an admin token
	// or a user is configured. See dashboard.Config.
	Dashboard dashboard.Config `yaml:"dashboard"`
	// Tracing: OpenTelemetry export over OTLP/HTTP; off unless an endpoint is set.
	Tracing tracing.Config `yaml:"tracing"`
	// Auth: scan-to-login and WeCom OAuth2 login (/api/v1/auth/...); see Auth.
	Auth    Auth    `yaml:"auth"`
	Log     Log     `yaml:"log"`
	Runtime Runtime `yaml:"runtime"`
}

// Runtime tunes the Go runtime of the wxhub process.
type Runtime struct {
	// GCHeapFloorMiB: the Go collector does not start before the heap has grown
	// by this many MiB since the last collection; once the live heap is larger,
	// the usual rule (collect when the heap doubles).
	// Default 256; 0 turns the floor off. Ignored when the GOGC environment
	// variable is set. See internal/gcfloor and docs/operations.md (sizing).
	GCHeapFloorMiB *int `yaml:"gc_heap_floor_mib"`
}

// DefaultGCHeapFloorMiB is runtime.gc_heap_floor_mib when unset.
const DefaultGCHeapFloorMiB = 256

// Connectors configures the connectors that run inside the wxhub process.
type Connectors struct {
	// Concurrency of each connector in this process. Default 4.
	Concurrency int `yaml:"concurrency"`
	// MaxDeliver: deliveries of an event before it goes to the DLQ. Default 5.
	MaxDeliver int `yaml:"max_deliver"`
	// Echo enables the echo connector and its rule ("echo <text>"). Default true.
	Echo *bool `yaml:"echo"`
	// ERP runs the ERP connector and its rules ("订单 1001", "库存 A-100", approval
	// card clicks) when set; see erp.Config.
	ERP *erp.Config `yaml:"erp"`
}

// Gateway is the HTTP front door.
type Gateway struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8080
	// MaxBodyBytes caps a callback or API body. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TimestampWindow rejects callbacks whose timestamp is further than this from
	// now (replays). Default 2m: WeChat's own retries come within 15 s, and
	// nats.duplicate_window must cover it (ids held cost memory at the message
	// rate). 0 in YAML keeps the default, negative disables.
	TimestampWindow time.Duration `yaml:"timestamp_window"`
	// PublishTimeout bounds the wait for JetStream's ack; WeChat gives up at 5 s.
	// Default 3s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// WeCom is the corp and its apps.
type WeCom struct {
	APIBase string `yaml:"api_base"` // default https://qyapi.weixin.qq.com
	CorpID  string `yaml:"corp_id"`
	Apps    []App  `yaml:"apps"`
}

// App is one WeCom self-built app (自建应用).
type App struct {
	Name           string `yaml:"name"` // -> /wecom/{name}/callback
	AgentID        int64  `yaml:"agent_id"`
	Secret         string `yaml:"secret"`
	Token          string `yaml:"token"`
	EncodingAESKey string `yaml:"encoding_aes_key"`
}

// MP lists the Official Accounts.
type MP struct {
	// APIBase is the Official Account API (token, customer-service and template
	// messages). Default https://api.weixin.qq.com; the simulator's address in the demo.
	APIBase  string    `yaml:"api_base"`
	Accounts []Account `yaml:"accounts"`
}

// Account is one WeChat Official Account (服务号).
type Account struct {
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

// API holds the keys of push-API and drop-in clients.
type API struct {
	Keys []APIKey `yaml:"keys"`
}

// APIKey is one client of POST /api/v1/messages and of the drop-in /cgi-bin endpoints.
type APIKey struct {
	Name string   `yaml:"name"`
	Key  string   `yaml:"key"`
	Apps []string `yaml:"apps"` // apps it may send through; "*" for all
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default for run) or console
}

// Defaults fills every zero field with its default.
func (c *Config) Defaults() {
	setDefault(&c.NATS.DataDir, "./data/nats")
	if c.NATS.Partitions == 0 {
		c.NATS.Partitions = 16
	}
	setDefault(&c.Gateway.Listen, "127.0.0.1:8080")
	if c.Gateway.MaxBodyBytes == 0 {
		c.Gateway.MaxBodyBytes = 1 << 20
	}
	if c.Gateway.TimestampWindow == 0 {
		c.Gateway.TimestampWindow = 2 * time.Minute
	}
	if c.Gateway.PublishTimeout == 0 {
		c.Gateway.PublishTimeout = 3 * time.Second
	}
	setDefault(&c.WeCom.APIBase, "https://qyapi.weixin.qq.com")
	setDefault(&c.MP.APIBase, "https://api.weixin.qq.com")
	if c.Connectors.Concurrency == 0 {
		c.Connectors.Concurrency = 4
	}
	if c.Connectors.MaxDeliver == 0 {
		c.Connectors.MaxDeliver = 5
	}
	if c.Connectors.Echo == nil {
		on := true
		c.Connectors.Echo = &on
	}
	c.Auth.defaults()
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "json")
	if c.Runtime.GCHeapFloorMiB == nil {
		floor := DefaultGCHeapFloorMiB
		c.Runtime.GCHeapFloorMiB = &floor
	}
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate reports the first problem as "config: <key>: <problem>".
func (c *Config) Validate() error {
	if err := c.NATS.Validate(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), bus.ErrConfig.Error()+": "))
	}
	if dw := cmp.Or(c.NATS.DuplicateWindow, bus.DefaultDuplicateWindow); dw < c.Gateway.TimestampWindow {
		// A replayed callback passes the timestamp check for this long; only the
		// duplicate window of WXHUB_IN then keeps it from becoming a second event.
		return invalid("nats.duplicate_window", "must be at least gateway.timestamp_window (%s), got %s", c.Gateway.TimestampWindow, dw)
	}
	if c.Gateway.MaxBodyBytes < 1024 {
		return invalid("gateway.max_body_bytes", "must be at least 1024, got %d", c.Gateway.MaxBodyBytes)
	}
	if c.Gateway.PublishTimeout <= 0 || c.Gateway.PublishTimeout > 4*time.Second {
		return invalid("gateway.publish_timeout", "must be in (0, 4s]: WeChat gives up after 5 s, got %s", c.Gateway.PublishTimeout)
	}
	if !strings.HasPrefix(c.WeCom.APIBase, "http://") && !strings.HasPrefix(c.WeCom.APIBase, "https://") {
		return invalid("wecom.api_base", "must be an http(s) URL, got %q", c.WeCom.APIBase)
	}
	if !strings.HasPrefix(c.MP.APIBase, "http://") && !strings.HasPrefix(c.MP.APIBase, "https://") {
		return invalid("mp.api_base", "must be an http(s) URL, got %q", c.MP.APIBase)
	}
	if len(c.WeCom.Apps) > 0 && c.WeCom.CorpID == "" {
		return invalid("wecom.corp_id", "is required when wecom.apps is set")
	}
	names := map[string]string{}
	for i, a := range c.WeCom.Apps {
		key := fmt.Sprintf("wecom.apps[%d]", i)
		if err := checkName(key, a.Name, names); err != nil {
			return err
		}
		if a.AgentID <= 0 {
			return invalid(key+".agent_id", "must be a positive number")
		}
		if a.Secret == "" {
			return invalid(key+".secret", "is required")
		}
		if err := checkCallback(key, a.Token, a.EncodingAESKey); err != nil {
			return err
		}
	}
	for i, a := range c.MP.Accounts {
		key := fmt.Sprintf("mp.accounts[%d]", i)
		if err := checkName(key, a.Name, names); err != nil {
			return err
		}
		if a.AppID == "" {
			return invalid(key+".app_id", "is required")
		}
		if a.PlainText && a.EncodingAESKey == "" {
			if a.Token == "" {
				return invalid(key+".token", "is required")
			}
			continue
		}
		if err := checkCallback(key, a.Token, a.EncodingAESKey); err != nil {
			return err
		}
	}
	keys := map[string]bool{}
	for i, k := range c.API.Keys {
		key := fmt.Sprintf("api.keys[%d]", i)
		if k.Name == "" {
			return invalid(key+".name", "is required")
		}
		if len(k.Key) < 8 {
			return invalid(key+".key", "must be at least 8 characters")
		}
		if keys[k.Key] {
			return invalid(key+".key", "is used by another key")
		}
		keys[k.Key] = true
		if len(k.Apps) == 0 {
			return invalid(key+".apps", "must list at least one app (or \"*\")")
		}
		for j, app := range k.Apps {
			if app != "*" && names[app] != "wecom" {
				return invalid(fmt.Sprintf("%s.apps[%d]", key, j), "no WeCom app named %q", app)
			}
		}
	}
	if err := c.Router.Validate(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), router.ErrConfig.Error()+": "))
	}
	if sc := c.SenderConfig(); len(sc.Apps) > 0 {
		if err := sc.Validate(); err != nil {
			return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), sender.ErrConfig.Error()+": "))
		}
	}
	if err := c.Dashboard.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), dashboard.ErrConfig.Error()+": "))
	}
	if a := c.Dashboard.WeComApp; a != "" {
		if _, ok := c.App(a); !ok {
			return invalid("dashboard.wecom_app", "no WeCom app named %q", a)
		}
	}
	if err := c.Tracing.Validate(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), tracing.ErrConfig.Error()+": "))
	}
	if c.Connectors.ERP != nil {
		if err := c.Connectors.ERP.WithDefaults().Validate(); err != nil {
			return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), erp.ErrConfig.Error()+": "))
		}
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if c.Connectors.Concurrency < 1 || c.Connectors.Concurrency > 1024 {
		return invalid("connectors.concurrency", "must be 1 to 1024, got %d", c.Connectors.Concurrency)
	}
	if c.Connectors.MaxDeliver < 1 {
		return invalid("connectors.max_deliver", "must be at least 1, got %d", c.Connectors.MaxDeliver)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return invalid("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return invalid("log.format", "must be json or console, got %q", c.Log.Format)
	}
	if f := c.Runtime.GCHeapFloorMiB; f != nil && (*f < 0 || *f > 1<<20) {
		return invalid("runtime.gc_heap_floor_mib", "must be 0 (off) to 1048576, got %d", *f)
	}
	return nil
}

func checkName(key, name string, seen map[string]string) error {
	if !namePattern.MatchString(name) {
		return invalid(key+".name", "must be 1-32 of a-z 0-9 _ - (it is part of URLs and NATS subjects), got %q", name)
	}
	if seen[name] != "" {
		return invalid(key+".name", "%q is used twice", name)
	}
	if strings.HasPrefix(key, "wecom") {
		seen[name] = "wecom"
	} else {
		seen[name] = "mp"
	}
	return nil
}

func checkCallback(key, token, aesKey string) error {
	if token == "" {
		return invalid(key+".token", "is required")
	}
	if len(aesKey) != 43 {
		return invalid(key+".encoding_aes_key", "must be 43 characters, got %d", len(aesKey))
	}
	return nil
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}

// SenderConfig is the sender section completed with the corp id and the apps
// of the wecom section, and the Official Accounts that have a secret (the
// others only receive) with mp.api_base.
func (c *Config) SenderConfig() sender.Config {
	sc := c.Sender
	sc.CorpID = c.WeCom.CorpID
	sc.MPAPIBase = c.MP.APIBase
	sc.Apps = nil
	for _, a := range c.WeCom.Apps {
		sc.Apps = append(sc.Apps, sender.App{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret})
	}
	for _, a := range c.MP.Accounts {
		if a.Secret != "" {
			sc.Apps = append(sc.Apps, sender.App{Name: a.Name, Kind: sender.AppKindMP, AppID: a.AppID, Secret: a.Secret})
		}
	}
	return sc
}

// App returns the WeCom app named name.
func (c *Config) App(name string) (App, bool) {
	for _, a := range c.WeCom.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return App{}, false
}

// Load reads path, expands ${ENV}, applies WXHUB_<SECTION>_<KEY> overrides and
// defaults, and validates.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Parse(raw, os.LookupEnv)
}

// Parse is Load on bytes with an injected environment.
func Parse(raw []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	c, err := decode(raw, lookupEnv)
	if err != nil {
		return nil, err
	}
	if err := applyEnv(reflect.ValueOf(c).Elem(), "WXHUB", lookupEnv); err != nil {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// decode expands ${ENV} in scalar values (naming the key of an unset variable)
// and decodes strictly: an unknown key is an error, not silently ignored.
func decode(raw []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := expandNode(&root, "", lookupEnv); err != nil {
		return nil, err
	}
	c := &Config{}
	if len(root.Content) == 0 {
		return c, nil
	}
	if err := strictyaml.CheckKnown(root.Content[0], reflect.TypeOf(*c), ""); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := root.Decode(c); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", ";"))
	}
	return c, nil
}

func expandNode(n *yaml.Node, path string, lookupEnv func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expandNode(c, path, lookupEnv); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			if err := expandNode(n.Content[i+1], key, lookupEnv); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expandNode(c, fmt.Sprintf("%s[%d]", path, i), lookupEnv); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing string
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := lookupEnv(name)
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			return invalid(path, "environment variable %s is not set", missing)
		}
	}
	return nil
}

// applyEnv sets scalar fields from WXHUB_<SECTION>_<KEY> (upper-cased yaml names),
// e.g. WXHUB_NATS_URL, WXHUB_GATEWAY_LISTEN, WXHUB_WECOM_API_BASE.
func applyEnv(v reflect.Value, prefix string, lookupEnv func(string) (string, bool)) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			if err := applyEnv(fv, name, lookupEnv); err != nil {
				return err
			}
			continue
		}
		val, ok := lookupEnv(name)
		if !ok {
			continue
		}
		if err := setScalar(fv, val); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
		}
	}
	return nil
}

func setScalar(fv reflect.Value, val string) error {
	switch {
	case fv.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(val)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(val)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case fv.CanInt():
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case fv.CanFloat():
		n, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(n)
	}
	// Lists and nested lists (apps, keys) are set in YAML only.
	return nil
}
