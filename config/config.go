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

	"github.com/wxhub/wxhub/internal/opsserver"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/gateway/hooks"
	"github.com/wxhub/wxhub/identity/oidc"
	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/internal/strictyaml"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/wecom"
)

// Smallest is the smallest configuration (design.md): one WeCom app and one
// API key, secrets from the environment. docs/configuration.md quotes it.
//
//go:embed smallest.yaml
var Smallest []byte

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("config")

// Config is the whole wxhub.yaml: one section per component, each of the
// component's own type. Its zero value plus Defaults() is a valid
// single-process hub once wecom and api are filled in.
type Config struct {
	NATS    bus.Config        `yaml:"nats"` // see bus.Config for every key and default
	Gateway gateway.Config    `yaml:"gateway"`
	WeCom   wecom.Config      `yaml:"wecom"`
	MP      wecom.MPConfig    `yaml:"mp"`
	API     gateway.APIConfig `yaml:"api"`
	// Router holds the routing rules; see router.Config. Reloaded without restart.
	Router router.Config `yaml:"router"`
	// Sender: limits, retries, quiet hours; see sender.Config. Its corp id and
	// apps come from the wecom section.
	Sender sender.Config `yaml:"sender"`
	// Connectors configures the built-in connectors, one section per instance
	// keyed by its name (connectors.erp, connectors.tickets with type: http).
	// Each connector decodes and validates its own section; see connectors.Builtin.
	Connectors map[string]yaml.Node `yaml:"connectors"`
	// Dashboard: the operations page at /dashboard/; off until an admin token
	// or a user is configured. See dashboard.Config.
	Dashboard dashboard.Config `yaml:"dashboard"`
	// Tracing: OpenTelemetry export over OTLP/HTTP; off unless an endpoint is set.
	Tracing tracing.Config `yaml:"tracing"`
	// Auth: scan-to-login and WeCom OAuth2 login (/api/v1/auth/...); see gateway.AuthConfig.
	Auth gateway.AuthConfig `yaml:"auth"`
	// Hooks: inbound hooks, POST /api/v1/hooks/{name}; see docs/connectors/http.md.
	Hooks hooks.Config `yaml:"hooks"`
	// OIDC: wxhub as an OpenID Connect provider backed by WeCom; off unless set.
	// See oidc.Config and docs/identity.md.
	OIDC *oidc.Config `yaml:"oidc"`
	// PIN: the step-up PIN for core data; off unless set. See pin.Config.
	PIN *pin.Config `yaml:"pin"`
	// Directory: the company directory cached from WeCom's contacts; off
	// unless set. See directory.Config.
	Directory *directory.Config `yaml:"directory"`
	Log       Log               `yaml:"log"`
	Runtime   Runtime           `yaml:"runtime"`
	// Metrics: this process's own /metrics, /healthz and /readyz on
	// metrics.listen (every component scrapeable when run apart).
	Metrics opsserver.Config `yaml:"metrics"`
}

// Runtime tunes the Go runtime of the wxhub process.
type Runtime struct {
	// GCHeapFloorMiB: the Go collector does not start before the heap has grown
	// by this many MiB since the last collection. Unset: the default of the
	// deployment (see internal/gcfloor); 0 turns the floor off. Ignored when
	// the GOGC or GOMEMLIMIT environment variable is set.
	GCHeapFloorMiB *int `yaml:"gc_heap_floor_mib"`
	// MemoryLimitMiB is the Go runtime's soft memory limit (as GOMEMLIMIT): the
	// collector works harder as the process nears it. Unset: the default of
	// the deployment (hub.DefaultMemoryLimitMiB with the embedded NATS server,
	// none on an external cluster); 0 turns it off. Ignored when the GOGC or
	// GOMEMLIMIT environment variable is set.
	MemoryLimitMiB *int `yaml:"memory_limit_mib"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default for run) or console
}

// Defaults fills every zero field with its default: each component's own
// defaults, then the loader's.
func (c *Config) Defaults() {
	c.NATS = c.NATS.WithDefaults()
	c.Gateway = c.Gateway.WithDefaults()
	c.WeCom = c.WeCom.WithDefaults()
	c.MP = c.MP.WithDefaults()
	c.Auth = c.GatewayConfig().Auth
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "json")
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// Validate reports the first problem as "config: <key>: <problem>". Each
// component validates its own section; the checks across sections are here.
func (c *Config) Validate() error {
	if err := c.NATS.Validate(); err != nil {
		return wrap(err, bus.ErrConfig)
	}
	if dw, need := cmp.Or(c.NATS.DuplicateWindow, bus.DefaultDuplicateWindow), c.Gateway.MinDuplicateWindow(); dw < need {
		// A replayed callback passes the timestamp check for up to 2 x the window
		// (stamped ahead, replayed when it is as far behind), plus the skew
		// between replicas; only the duplicate window of WXHUB_IN then keeps it
		// from becoming a second event.
		return invalid("nats.duplicate_window", "must be at least 2 x gateway.timestamp_window + gateway.clock_skew (%s), got %s", need, dw)
	}
	if err := c.WeCom.Validate(); err != nil {
		return wrap(err, nil)
	}
	if err := c.MP.Validate(c.WeCom.Names()); err != nil {
		return wrap(err, nil)
	}
	if err := c.GatewayConfig().Validate(); err != nil {
		return wrap(err, gateway.ErrConfig)
	}
	if authTTL := c.NATS.WithDefaults().AuthTTL; c.Auth.ChallengeTTL > authTTL {
		return invalid("auth.challenge_ttl", "must be at most nats.auth_ttl (%s), got %s", authTTL, c.Auth.ChallengeTTL)
	}
	if err := c.Router.Validate(); err != nil {
		return wrap(err, router.ErrConfig)
	}
	if sc := c.SenderConfig(); len(sc.Apps) > 0 {
		if err := sc.Validate(); err != nil {
			return wrap(err, sender.ErrConfig)
		}
	}
	if err := c.Dashboard.WithDefaults().Validate(); err != nil {
		return wrap(err, dashboard.ErrConfig)
	}
	if a := c.Dashboard.WeComApp; a != "" {
		if _, ok := c.WeCom.App(a); !ok {
			return invalid("dashboard.wecom_app", "no WeCom app named %q", a)
		}
	}
	if err := c.validateIdentity(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return wrap(err, tracing.ErrConfig)
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
	if l := c.Runtime.MemoryLimitMiB; l != nil && *l != 0 && (*l < 64 || *l > 1<<20) {
		return invalid("runtime.memory_limit_mib", "must be 0 (off) or 64 to 1048576, got %d", *l)
	}
	if err := c.Metrics.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// validateIdentity checks the oidc, pin and directory sections and that the
// apps they name exist.
func (c *Config) validateIdentity() error {
	apps := c.WeCom.Names()
	app := func(section, name string) error {
		if !apps[name] {
			return invalid(section+".app", "no WeCom app named %q", name)
		}
		return nil
	}
	if d := c.Directory; d != nil {
		*d = d.WithDefaults()
		if err := d.Validate(); err != nil {
			return fmt.Errorf("%w: directory.%v", ErrInvalid, err)
		}
		if err := app("directory", d.App); err != nil {
			return err
		}
		if _, err := d.Corps(c.WeCom); err != nil { // apps: known, one per corp
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if p := c.PIN; p != nil {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: pin.%v", ErrInvalid, err)
		}
		if err := app("pin", p.App); err != nil {
			return err
		}
		keys := map[string]bool{}
		for _, k := range c.API.Keys {
			keys[k.Name] = true
		}
		for i, k := range p.AdminKeys {
			if !keys[k] {
				return invalid(fmt.Sprintf("pin.admin_keys[%d]", i), "no api key named %q", k)
			}
		}
	}
	if o := c.OIDC; o != nil {
		if err := o.Validate(); err != nil {
			return fmt.Errorf("%w: oidc.%v", ErrInvalid, err)
		}
		if err := app("oidc", o.App); err != nil {
			return err
		}
		for i, cl := range o.Clients {
			if cl.RequirePIN && c.PIN == nil {
				return invalid(fmt.Sprintf("oidc.clients[%d].require_pin", i), "needs the pin section")
			}
		}
	}
	return nil
}

// wrap turns a component's validation error into "config: <key>: <problem>":
// the component's own sentinel prefix is dropped.
func wrap(err, sentinel error) error {
	msg := err.Error()
	if sentinel != nil {
		msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}

// GatewayConfig is the gateway section with the sections the gateway serves.
func (c *Config) GatewayConfig() gateway.Config {
	gc := c.Gateway
	gc.WeCom, gc.MP, gc.API, gc.Auth, gc.Hooks = c.WeCom, c.MP, c.API, c.Auth, c.Hooks
	return gc.WithDefaults()
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
		sc.Apps = append(sc.Apps, sender.App{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret, CorpID: c.WeCom.CorpOf(a)})
	}
	sc.CorpLimits = c.corpLimits()
	for _, a := range c.MP.Accounts {
		if a.Secret != "" {
			sc.Apps = append(sc.Apps, sender.App{Name: a.Name, Kind: sender.AppKindMP, AppID: a.AppID, Secret: a.Secret})
		}
	}
	return sc
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

// Decode reads raw as wxhub.yaml does (strict keys, ${ENV} expanded) without
// defaults, overrides or validation: for overlays such as `wxhub demo --config`.
func Decode(raw []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return decode(raw, lookupEnv)
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
