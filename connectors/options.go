package connectors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
)

// ErrOptions wraps every invalid Options error; the message names the field.
var ErrOptions = errors.New("connectors: invalid options")

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options configure a Runner. The zero value of every field but Name is usable.
type Options struct {
	// Name of the connector, as the router's rules name it in `to:`. Required;
	// letters, digits, '_' and '-'.
	Name string
	// Concurrency is how many handler calls run at once in this process.
	// Default 4. Events of one user never run concurrently whatever the value.
	Concurrency int
	// MaxDeliver is how many deliveries an event gets before it goes to the DLQ.
	// Default 5; 1 means no retry.
	MaxDeliver int
	// Backoff gives the redelivery delay after failed attempt n (1-based).
	// Default ExponentialBackoff(time.Second, time.Minute).
	Backoff func(attempt int) time.Duration
	// AckWait is how long the server waits for an outcome before redelivering.
	// Default 6s. Slow handlers are kept alive with a heartbeat every AckWait/3,
	// so it bounds the detection of a crashed process (another process takes
	// its event over within it), not the handler's time.
	AckWait time.Duration
	// Partitions must equal the router's (bus.Config.Partitions). Default: the bus's.
	Partitions int
	// PollWait is how long one pull request of a partition stays open on the
	// server before it is renewed (at least 1 s; shutdown does not wait for it).
	// Default 5s.
	PollWait time.Duration
	// ShutdownTimeout is how long in-flight handlers may run after ctx is done
	// before their ctx is cancelled. Default 30s.
	ShutdownTimeout time.Duration
	// Middleware wraps the handler; the first is the outermost.
	Middleware []Middleware
	// OnResult, if set, is called after each delivery's outcome is settled (for
	// metrics); it must be fast and safe for concurrent use.
	OnResult func(Result)
	// Logger; default zap.NewNop(). Event ids are logged, bodies never at info.
	Logger *zap.Logger
	// Consumes and Emits are the connector's declared schema ids (see Spec).
	// Defaults: [wxhub.event/v1] and [wxhub.outbound/v1]; a handler that is a
	// Specifier supplies them.
	Consumes []string
	Emits    []string
	// Registerer, if set, gets the runner's Prometheus metrics:
	// wxhub_connector_events_total{connector,outcome},
	// wxhub_connector_handle_seconds{connector}, wxhub_connector_in_flight{connector},
	// wxhub_connector_last_event_timestamp_seconds{connector}. Runners may share
	// one registry. Nil: no metrics.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults(busPartitions int) Options {
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 5
	}
	if o.Backoff == nil {
		o.Backoff = ExponentialBackoff(time.Second, time.Minute)
	}
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.Partitions == 0 {
		o.Partitions = busPartitions
	}
	if o.PollWait == 0 {
		o.PollWait = 5 * time.Second
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Consumes == nil {
		o.Consumes = []string{schemas.SchemaEvent}
	}
	if o.Emits == nil {
		o.Emits = []string{schemas.SchemaOutbound}
	}
	return o
}

// Validate checks the options after defaults.
func (o Options) validate() error {
	switch {
	case !validName.MatchString(o.Name):
		return fmt.Errorf("%w: name: %q, want 1-64 of [A-Za-z0-9_-]", ErrOptions, o.Name)
	case o.Concurrency < 1:
		return fmt.Errorf("%w: concurrency: %d, want >= 1", ErrOptions, o.Concurrency)
	case o.MaxDeliver < 1:
		return fmt.Errorf("%w: max_deliver: %d, want >= 1", ErrOptions, o.MaxDeliver)
	case o.AckWait < time.Second:
		return fmt.Errorf("%w: ack_wait: %s, want >= 1s", ErrOptions, o.AckWait)
	case o.Partitions < 1 || o.Partitions > 1024:
		return fmt.Errorf("%w: partitions: %d, want 1..1024", ErrOptions, o.Partitions)
	case o.PollWait < 10*time.Millisecond:
		return fmt.Errorf("%w: poll_wait: %s, want >= 10ms", ErrOptions, o.PollWait)
	case o.ShutdownTimeout < 0:
		return fmt.Errorf("%w: shutdown_timeout: %s, want >= 0", ErrOptions, o.ShutdownTimeout)
	case len(o.Consumes) == 0:
		return fmt.Errorf("%w: consumes: empty, want at least %s", ErrOptions, schemas.SchemaEvent)
	case slices.Contains(o.Consumes, ""), slices.Contains(o.Emits, ""):
		return fmt.Errorf("%w: consumes/emits: empty schema id", ErrOptions)
	}
	return nil
}

// ExponentialBackoff doubles the delay per attempt from lo up to hi, with
// "equal jitter" (half fixed, half random) so that events failing together
// do not retry together.
func ExponentialBackoff(lo, hi time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := lo
		for i := 1; i < attempt && d < hi; i++ {
			d *= 2
		}
		d = min(d, hi)
		half := d / 2
		if half <= 0 {
			return d
		}
		return half + rand.N(half+1)
	}
}

// ConstantBackoff always waits d (tests, or legacy systems with a fixed retry-after).
func ConstantBackoff(d time.Duration) func(int) time.Duration {
	return func(int) time.Duration { return d }
}
