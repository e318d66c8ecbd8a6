package connectors

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/strictyaml"
	"github.com/wxhub/wxhub/schemas"
)

// Builtin describes a connector the hub can run inside its own process. Each
// built-in connector package exports one Builtin value; the hub's registration
// list holds them, and a section under `connectors:` in the config, keyed by
// the instance's name, configures one instance.
type Builtin struct {
	// Type names the kind of connector. A section whose key equals Type is an
	// instance of it; a section under another name says `type: <Type>` (any
	// number of named instances, e.g. several http connectors).
	Type string
	// Summary is one line for the docs and `wxhub connectors`.
	Summary string
	// Default: an instance named Type runs when the config has no section for
	// it (`<type>: false` turns it off).
	Default bool
	// Configure decodes and validates one instance's section. node is nil when
	// the section is absent or empty; the hub has removed its `type:` key. Errors name the key relative to the
	// section ("base_url: is required"); the hub prefixes "connectors.<name>.".
	Configure func(name string, node *yaml.Node) (Instance, error)
}

// Instance is one configured built-in connector.
type Instance struct {
	// Rules go before the configured router rules; Fallback after them (a
	// catch-all such as echo must not shadow the integrator's rules).
	Rules, Fallback []schemas.RouteRule
	// Options for the connector's Runner. The hub sets Name (the instance's
	// name), Partitions, PollWait and Registerer, and Logger when it is nil.
	Options Options
	// New builds the handler when the instance starts in this process; it is
	// not called in processes that do not run this connector.
	New func(ctx context.Context, deps Deps) (Handler, error)
}

// Deps are what the hub hands a built-in connector when it starts it.
type Deps struct {
	// Bus is the hub's connection (KV buckets, object stores).
	Bus *bus.Bus
	// Logger is named after the instance.
	Logger *zap.Logger
	// Registerer for the connector's own metrics; nil: none.
	Registerer prometheus.Registerer
	// Hub holds the facts of the hub's configuration a connector may show.
	Hub HubFacts
}

// HubFacts are read-only facts of the hub a connector may need.
type HubFacts struct {
	// HelpText is the current help text (the router's rules' descriptions);
	// it changes when the rules reload.
	HelpText func() string
	// QuietHours is the hub's default do-not-disturb window ("22:00-08:00"), or "".
	QuietHours string
	// Corps are the hub's WeCom corp ids, the first corp first (wecom.corps[]).
	Corps []string
}

// DecodeSection decodes a connector section strictly into cfg (a pointer): a
// key cfg has no field for is an error naming the key and line. A nil node
// leaves cfg as it is.
func DecodeSection(node *yaml.Node, cfg any) error {
	return strictyaml.Decode(node, cfg, "")
}

// RunnerConfig holds the keys every built-in connector's section accepts
// beside its own; inline it (`yaml:",inline"`) in the connector's Config.
type RunnerConfig struct {
	// Concurrency: handler calls at once in this process. Default 4.
	Concurrency int `yaml:"concurrency"`
	// MaxDeliver: deliveries of an event before it goes to the DLQ. Default 5.
	MaxDeliver int `yaml:"max_deliver"`
	// RetryMin and RetryMax bound the exponential backoff between deliveries.
	// Defaults 1s and 1m.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
}

// Validate names the first bad key.
func (c RunnerConfig) Validate() error {
	switch {
	case c.Concurrency < 0 || c.Concurrency > 1024:
		return fmt.Errorf("concurrency: must be 1 to 1024, got %d", c.Concurrency)
	case c.MaxDeliver < 0:
		return fmt.Errorf("max_deliver: must be at least 1, got %d", c.MaxDeliver)
	case c.RetryMin < 0 || c.RetryMax < 0:
		return fmt.Errorf("retry_min, retry_max: must not be negative")
	case c.RetryMax > 0 && c.RetryMin > c.RetryMax:
		return fmt.Errorf("retry_min: %s is above retry_max %s", c.RetryMin, c.RetryMax)
	}
	return nil
}

// Options are the runner options the keys give; zero keys keep the runner's
// defaults.
func (c RunnerConfig) Options() Options {
	o := Options{Concurrency: c.Concurrency, MaxDeliver: c.MaxDeliver}
	if c.RetryMin > 0 || c.RetryMax > 0 {
		o.Backoff = ExponentialBackoff(cmp.Or(c.RetryMin, time.Second), cmp.Or(c.RetryMax, time.Minute))
	}
	return o
}

// Section is a connector config that can check itself.
type Section interface{ Validate() error }

// ConfigureSection decodes node into a new C strictly and validates it: the
// first half of most Configure functions.
func ConfigureSection[C Section](node *yaml.Node) (C, error) {
	var c C
	if err := DecodeSection(node, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}
