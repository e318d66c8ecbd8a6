// Package router reads inbound events from WXHUB_IN and sends each to the
// connectors its rules name, on WXHUB_ROUTE, partitioned by user. Rules are
// YAML (Config) and can be swapped at run time without losing an event.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/tracing"
)

// Stage is the DLQ stage of events the router cannot route.
const Stage = "router"

// Options tune the router process; the zero value works.
type Options struct {
	// Durable consumer name on WXHUB_IN. Default "wxhub_router".
	Durable string
	// Batch is how many events one pull takes (and the consumer's MaxAckPending). Default 64.
	Batch int
	// AckWait before the server redelivers an event of a crashed router. Default 30s.
	AckWait time.Duration
	// MaxAttempts to publish an event to WXHUB_ROUTE before it goes to the DLQ. Default 5.
	MaxAttempts int
	// RetryDelay between publish attempts (doubled each time). Default 500ms.
	RetryDelay time.Duration
	// PollWait of one pull; shutdown takes at most this long. Default 5s.
	PollWait time.Duration
	// OnRouted, if set, is called after each event was routed and acked (metrics, tests).
	OnRouted func(ev *schemas.Event, to []string)
	Logger   *zap.Logger
	// Registerer receives the router's metrics (docs/metrics.md). Default: a
	// private registry, i.e. nowhere anyone scrapes.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Durable == "" {
		o.Durable = "wxhub_router"
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 500 * time.Millisecond
	}
	if o.PollWait <= 0 {
		o.PollWait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Router routes events. SetRules may be called concurrently with Run.
type Router struct {
	b     *bus.Bus
	opts  Options
	log   *zap.Logger
	m     *metrics
	rules atomic.Pointer[ruleSet]
}

// New validates cfg and returns a Router; call Run to start it.
func New(b *bus.Bus, cfg Config, opts Options) (*Router, error) {
	opts = opts.withDefaults()
	r := &Router{b: b, opts: opts, log: opts.Logger.Named("router"), m: newMetrics(opts.Registerer)}
	if err := r.SetRules(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// SetRules validates cfg and swaps it in atomically: each event is routed with
// either the old or the new rules, never a mix. A bad cfg keeps the old rules
// and returns the error.
func (r *Router) SetRules(cfg Config) error {
	rs, err := compile(cfg)
	if err != nil {
		return err
	}
	r.rules.Store(rs)
	return nil
}

// Rules returns the rules in use.
func (r *Router) Rules() Config { return r.rules.Load().cfg }

// Match returns the connectors ev goes to under the current rules.
func (r *Router) Match(ev *schemas.Event) []string {
	to, _ := r.rules.Load().match(ev)
	return to
}

// ConsumerConfig is the router's durable consumer on WXHUB_IN. It is pinned to
// one router process at a time (priority group "router", pinned policy): events
// are routed sequentially in arrival order by the pinned process, so one user's
// events reach WXHUB_ROUTE in the order WeChat delivered them. Other router
// processes are hot standbys that take over when the pinned one stops pulling.
func ConsumerConfig(durable string, batch int, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        durable,
		Description:    "wxhub router",
		FilterSubject:  bus.SubjectInAll,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1, // the router dead-letters itself; nothing is stranded
		MaxAckPending:  batch,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{priorityGroup},
		PinnedTTL:      2 * ackWait,
	}
}

const priorityGroup = "router"

// Run routes events until ctx is done; the batch in hand is finished first.
func (r *Router) Run(ctx context.Context) error {
	c, err := r.b.JS().CreateOrUpdateConsumer(ctx, bus.StreamIn, ConsumerConfig(r.opts.Durable, r.opts.Batch, r.opts.AckWait))
	if err != nil {
		return fmt.Errorf("router: declare consumer: %w", err)
	}
	workCtx := context.WithoutCancel(ctx)
	r.log.Info("router started", zap.Int("rules", len(r.Rules().Rules)))
	for ctx.Err() == nil {
		batch, err := c.Fetch(r.opts.Batch, jetstream.FetchMaxWait(r.opts.PollWait), jetstream.FetchPriorityGroup(priorityGroup))
		if err != nil {
			r.pause(ctx, err)
			continue
		}
		for msg := range batch.Messages() {
			// Events already delivered are routed even during shutdown, in
			// order; handing them back would let a standby reorder them.
			r.handle(workCtx, msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			r.pause(ctx, err)
		}
	}
	r.log.Info("router stopped")
	return nil
}

func (r *Router) pause(ctx context.Context, err error) {
	r.log.Debug("pull failed; retrying", zap.Error(err))
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle routes one event inside its span ("router.route"), whose traceparent
// the events published to the connectors carry.
func (r *Router) handle(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	defer func() { r.m.seconds.Observe(time.Since(start).Seconds()) }()
	h := msg.Headers()
	ctx, end := tracing.StartSpanState(ctx, "router.route", h.Get(bus.HeaderTraceParent), h.Get(bus.HeaderTraceState))
	err := r.route(ctx, msg)
	end(err)
}

func (r *Router) route(ctx context.Context, msg jetstream.Msg) error {
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	var ev schemas.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		reason := fmt.Sprintf("invalid event JSON: %v", err)
		r.deadLetter(ctx, msg, reason, attempt)
		return errors.New(reason)
	}
	if ev.ID == "" {
		r.deadLetter(ctx, msg, "event has no id", attempt)
		return errors.New("event has no id")
	}
	log := r.log.With(zap.String("event", ev.ID))
	rs := r.rules.Load() // one rule set per event, even across a reload
	to, hits := rs.matchIdx(&ev)
	tracing.SetAttributes(ctx, tracing.String("wxhub.event", ev.ID), tracing.String("wxhub.to", strings.Join(to, ",")))

	stop := heartbeat(msg, r.opts.AckWait/2)
	defer stop()
	var lastErr error
	delay := r.opts.RetryDelay
	for try := 1; try <= r.opts.MaxAttempts; try++ {
		if lastErr = r.publish(ctx, &ev, rs.cfg.Partitions, to); lastErr == nil {
			break
		}
		log.Warn("publishing to connectors failed", zap.Int("try", try), zap.Error(lastErr))
		if try < r.opts.MaxAttempts {
			time.Sleep(delay)
			delay *= 2
		}
	}
	if lastErr != nil {
		r.deadLetter(ctx, msg, lastErr.Error(), r.opts.MaxAttempts)
		return lastErr
	}
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack failed; the event will be routed again (deduplicated)", zap.Error(err))
	}
	r.countRouted(rs, hits, to)
	if log.Core().Enabled(zap.DebugLevel) {
		log.Debug("event routed", zap.Strings("to", to), zap.Strings("rules", ruleNames(rs, hits)))
	}
	if r.opts.OnRouted != nil {
		r.opts.OnRouted(&ev, to)
	}
	return nil
}

func ruleNames(rs *ruleSet, hits []int) []string {
	names := make([]string, len(hits))
	for i, h := range hits {
		names[i] = rs.rules[h].name
	}
	return names
}

func (r *Router) publish(ctx context.Context, ev *schemas.Event, partitions int, to []string) error {
	for _, c := range to {
		if _, err := r.b.PublishRoute(ctx, c, partitions, ev); err != nil {
			return fmt.Errorf("to %s: %w", c, err)
		}
	}
	return nil
}

func (r *Router) deadLetter(ctx context.Context, msg jetstream.Msg, reason string, attempts int) {
	if err := r.b.DeadLetter(ctx, Stage, msg, reason, attempts); err != nil {
		r.log.Error("dead-lettering failed; event will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(r.opts.AckWait)
		return
	}
	_ = msg.TermWithReason("dead-lettered")
	r.log.Error("event dead-lettered", zap.String("subject", msg.Subject()), zap.String("reason", reason))
}

func heartbeat(msg jetstream.Msg, every time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done); <-exited }
}
