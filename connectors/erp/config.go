package erp

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/connectors"
)

// Name is the connector's name in routing rules (`to: [erp]`) and its
// subjects (wxhub.route.erp.<partition>).
const Name = "erp"

// ErrConfig wraps every invalid Config error; the message names the key.
var ErrConfig = errors.New("erp: invalid config")

// Config configures the ERP connector (YAML section connectors.erp).
type Config struct {
	// BaseURL of the ERP's HTTP API, e.g. http://erp.internal:8081. Required.
	BaseURL string `yaml:"base_url"`
	// Token, if set, is sent to the ERP as "Authorization: Bearer <token>".
	// Give it as ${ENV}; it is never logged.
	Token string `yaml:"token"`
	// Timeout of one ERP call; a slower answer counts as "ERP unavailable" and
	// is retried. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// App is the WeCom app replies go through when an event names none, and
	// the app the ERP pushes its approval cards to. Default "helpdesk".
	App string `yaml:"app"`
	// MaxDeliver is how many deliveries an event gets while the ERP is down
	// before it goes to the DLQ (and the user is told). Default 30, which with
	// the default backoff keeps retrying for about an hour.
	MaxDeliver int `yaml:"max_deliver"`
	// RetryMin and RetryMax bound the exponential backoff between deliveries.
	// Defaults 2s and 2m.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// Concurrency is how many events this process handles at once. Default 4.
	Concurrency int `yaml:"concurrency"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.App == "" {
		c.App = "helpdesk"
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 30
	}
	if c.RetryMin == 0 {
		c.RetryMin = 2 * time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 2 * time.Minute
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	return c
}

// Validate checks c (after WithDefaults); errors wrap ErrConfig and name the key.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		return fmt.Errorf("%w: base_url: is required", ErrConfig)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%w: base_url: %q is not an http(s) URL", ErrConfig, c.BaseURL)
	case c.Timeout < 10*time.Millisecond:
		return fmt.Errorf("%w: timeout: %s, want >= 10ms", ErrConfig, c.Timeout)
	case c.MaxDeliver < 1:
		return fmt.Errorf("%w: max_deliver: %d, want >= 1", ErrConfig, c.MaxDeliver)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("%w: retry_min/retry_max: %s/%s, want 0 < retry_min <= retry_max", ErrConfig, c.RetryMin, c.RetryMax)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("%w: concurrency: %d, want 1..1024", ErrConfig, c.Concurrency)
	}
	return nil
}

// RunnerOptions are the SDK options that go with c: name "erp", its
// concurrency, deliveries and backoff. The caller may override fields (e.g.
// Logger, OnResult) before connectors.Run.
func (c Config) RunnerOptions(log *zap.Logger) connectors.Options {
	c = c.WithDefaults()
	return connectors.Options{
		Name:        Name,
		Concurrency: c.Concurrency,
		MaxDeliver:  c.MaxDeliver,
		Backoff:     connectors.ExponentialBackoff(c.RetryMin, c.RetryMax),
		Logger:      log,
	}
}
