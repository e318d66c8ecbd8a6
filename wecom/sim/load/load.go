// Package load is the hub's load generator (`wxhub-bench load`, `wxhub-bench run`):
// many virtual members of the simulated corp posting signed, encrypted
// callbacks to a gateway on this machine, at a constant offered rate (open
// loop) or as fast as a fixed number of requests in flight allows (closed loop).
//
// Open-loop latency is measured from each request's scheduled send time, not
// from when a busy client got round to it, so a stalled hub shows up as latency
// instead of silently lowering the rate (no coordinated omission). Bodies are
// encrypted before the run (Prepare) to keep the generator cheap.
//
// Targets are loopback only (127.0.0.0/8, ::1, localhost): the generator is for
// measuring a hub you run here, never for sending traffic anywhere else. Every
// run is bounded by a count and a duration.
package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
)

// ErrConfig wraps every configuration error; the message names the field.
var ErrConfig = errors.New("load: invalid config")

// ErrNotLoopback is returned for a target that is not on this machine.
var ErrNotLoopback = errors.New("load: target must be a loopback address (127.0.0.0/8, ::1 or localhost)")

// Target is the gateway and the app whose callbacks are played.
type Target struct {
	// URL is the gateway's base URL, e.g. http://127.0.0.1:8080. Loopback only.
	URL string
	// Path is the callback path; default /wecom/{App}/callback.
	Path string
	// App is the app's name in the hub's config.
	App string
	// AgentID, CorpID, Token and EncodingAESKey are the app's callback settings,
	// as in the hub's and the simulator's config.
	AgentID        int64
	CorpID         string
	Token          string
	EncodingAESKey string
}

// Config bounds and shapes a run.
type Config struct {
	Target Target
	// Users are the members who write (FromUserName), round robin. They must be
	// members of the simulated corp, or the hub's replies are refused.
	Users []string
	// Rate is the offered rate in messages per second; 0 means closed loop: as
	// fast as Concurrency requests in flight allow.
	Rate float64
	// Concurrency is the most requests in flight. Default 64 (closed loop) or 512 (open loop).
	Concurrency int
	// Duration bounds the run. Default 10s; at most 30m.
	Duration time.Duration
	// Mix of message kinds. Default DefaultMix.
	Mix Mix
	// TextPrefix starts every text message, e.g. "echo " to reach the echo connector.
	TextPrefix string
	// Marker precedes the sequence number in text content. Default DefaultMarker.
	Marker string
	// Timeout of one request. Default 10s.
	Timeout time.Duration
	// Progress, when set, is called about once a second during the run.
	Progress func(Progress)
}

// DefaultMarker is Config.Marker when unset.
const DefaultMarker = "lg#"

// MaxDuration caps Config.Duration: a load run must stop by itself.
const MaxDuration = 30 * time.Minute

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 64
		if c.Rate > 0 {
			c.Concurrency = 512
		}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mix == nil {
		c.Mix = DefaultMix
	}
	if c.Marker == "" {
		c.Marker = DefaultMarker
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Target.Path == "" {
		c.Target.Path = "/wecom/" + c.Target.App + "/callback"
	}
	return c
}

func (c Config) validateTarget() error {
	if err := CheckLoopback(c.Target.URL); err != nil {
		return err
	}
	if c.Target.App == "" && !strings.HasPrefix(c.Target.Path, "/") {
		return fmt.Errorf("%w: target.app: empty", ErrConfig)
	}
	return nil
}

// Validate checks c after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.validateTarget(); err != nil {
		return err
	}
	switch {
	case c.Rate < 0:
		return fmt.Errorf("%w: rate: %v is negative", ErrConfig, c.Rate)
	case c.Concurrency < 1:
		return fmt.Errorf("%w: concurrency: %d", ErrConfig, c.Concurrency)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("%w: duration: %s (0 < duration <= %s)", ErrConfig, c.Duration, MaxDuration)
	case c.Mix.total() == 0:
		return fmt.Errorf("%w: mix: no kind has a weight", ErrConfig)
	}
	return nil
}

// CheckLoopback accepts only http(s) URLs whose host is localhost or a loopback
// IP literal. Names other than localhost are refused without being resolved: a
// name could point anywhere.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrNotLoopback, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %q: scheme must be http or https", ErrNotLoopback, raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, raw)
	}
	return nil
}

// Progress is a snapshot during a run.
type Progress struct {
	Elapsed  time.Duration
	Sent     int64 // requests started
	OK       int64 // answered 200
	Failed   int64 // any other answer or no answer
	InFlight int64
}

// Result is what a run measured.
type Result struct {
	Offered  float64       // the configured rate; 0 for closed loop
	Elapsed  time.Duration // from the first scheduled send to the last answer
	Sent     int           // requests sent
	OK       int           // answered 200
	Failed   int           // everything else
	Errors   map[string]int
	Latency  *Latencies // callback answer time: from the scheduled send (open loop) or the send (closed loop)
	Kinds    map[Kind]int
	Schedule []time.Time // per request index: when it was due; zero if never sent
	Answered []bool      // per request index: answered 200
}

// Throughput is the answered requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// ErrorSummary lists errors as "503×3, timeout×1".
func (r *Result) ErrorSummary() string {
	var parts []string
	for k, v := range r.Errors {
		parts = append(parts, k+"×"+strconv.Itoa(v))
	}
	if len(parts) == 0 {
		return "none"
	}
	sortStrings(parts)
	return strings.Join(parts, ", ")
}

// Generator sends prepared requests. Safe for one Run at a time.
type Generator struct {
	cfg    Config
	client *resty.Client
}

// New validates cfg and returns a Generator with a keep-alive HTTP client sized
// for cfg.Concurrency.
func New(cfg Config) (*Generator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never through a proxy
		MaxIdleConns:        cfg.Concurrency + 16,
		MaxIdleConnsPerHost: cfg.Concurrency + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := resty.New().SetTransport(tr).SetTimeout(cfg.Timeout).
		SetHeader("Content-Type", "text/xml").SetRedirectPolicy(resty.NoRedirectPolicy())
	return &Generator{cfg: cfg, client: client}, nil
}

// Close releases idle connections.
func (g *Generator) Close() {
	if tr, ok := g.client.GetClient().Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// Run sends reqs (in order) to the target until they run out, cfg.Duration
// passes, or ctx ends, whichever comes first, and waits for the answers of
// those sent.
func (g *Generator) Run(ctx context.Context, reqs []Request) (*Result, error) {
	cfg := g.cfg
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w: no requests", ErrConfig)
	}
	url := strings.TrimRight(cfg.Target.URL, "/") + cfg.Target.Path + "?"
	res := &Result{
		Offered:  cfg.Rate,
		Errors:   map[string]int{},
		Latency:  NewLatencies(len(reqs)),
		Kinds:    map[Kind]int{},
		Schedule: make([]time.Time, len(reqs)),
		Answered: make([]bool, len(reqs)),
	}
	var sent, ok, failed, inflight atomic.Int64
	var mu sync.Mutex // guards res.Errors
	do := func(i int, due time.Time) {
		inflight.Add(1)
		defer inflight.Add(-1)
		r := &reqs[i]
		resp, err := g.client.R().SetContext(ctx).SetBody(r.Body).Post(url + r.Query)
		lat := time.Since(due)
		switch {
		case err == nil && resp.StatusCode() == http.StatusOK:
			ok.Add(1)
			res.Answered[i] = true
			res.Latency.Add(lat)
		default:
			failed.Add(1)
			key := errorKey(resp, err)
			mu.Lock()
			res.Errors[key]++
			mu.Unlock()
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	stopProgress := g.progress(start, &sent, &ok, &failed, &inflight)
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		// Open loop: a pacer hands each request to the workers at its due
		// time through a queue as long as the run, so it never waits for them.
		queue := make(chan int, len(reqs))
		for w := 0; w < cfg.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range queue {
					do(i, res.Schedule[i])
				}
			}()
		}
		interval := float64(time.Second) / cfg.Rate
	pace:
		for i := range reqs {
			due := start.Add(time.Duration(float64(i) * interval))
			if due.Sub(start) >= cfg.Duration {
				break
			}
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-runCtx.Done():
					t.Stop()
					break pace
				case <-t.C:
				}
			} else if runCtx.Err() != nil {
				break
			}
			res.Schedule[i] = due
			sent.Add(1)
			queue <- i
		}
		close(queue)
	} else {
		var next atomic.Int64
		for w := 0; w < cfg.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for runCtx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= len(reqs) {
						return
					}
					now := time.Now()
					res.Schedule[i] = now
					sent.Add(1)
					do(i, now)
				}
			}()
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	stopProgress()
	res.Sent, res.OK, res.Failed = int(sent.Load()), int(ok.Load()), int(failed.Load())
	for i := range reqs {
		if !res.Schedule[i].IsZero() {
			res.Kinds[reqs[i].Kind]++
		}
	}
	return res, ctx.Err()
}

func (g *Generator) progress(start time.Time, sent, ok, failed, inflight *atomic.Int64) func() {
	if g.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				g.cfg.Progress(Progress{Elapsed: time.Since(start), Sent: sent.Load(), OK: ok.Load(),
					Failed: failed.Load(), InFlight: inflight.Load()})
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func errorKey(resp *resty.Response, err error) string {
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case err != nil && errors.Is(err, context.Canceled):
		return "canceled"
	case err != nil:
		return "transport"
	default:
		return strconv.Itoa(resp.StatusCode())
	}
}
