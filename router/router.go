// Package router reads inbound events from WXHUB_IN and sends each to the
// connectors its rules name, on WXHUB_ROUTE, partitioned by user. Rules are
// YAML (Config) and can be swapped at run time without losing an event.
package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/media"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/tracing"
)

// Stage is the DLQ stage of events the router cannot route.
const Stage = "router"

// Options tune the router process; the zero value works. Give them to New
// with WithOptions, or one knob at a time with the With... options.
type Options struct {
	// Durable consumer name on WXHUB_IN. Default "wxhub_router".
	Durable string
	// Batch is how many events one pull takes (and the consumer's MaxAckPending). Default 64.
	Batch int
	// AckWait before the server redelivers an event of a crashed router, and
	// the time after which a standby takes over from a router that stopped
	// pulling (the consumer's PinnedTTL). Default 5s.
	AckWait time.Duration
	// MaxAttempts to publish an event that NATS refuses for good (too large,
	// bad subject) before it goes to the DLQ. Default 5. Any other failure
	// (no stream, timeouts, storage faults) is retried for as long as it lasts:
	// the event was acknowledged to WeChat, so a fault must delay it, not
	// dead-letter it.
	MaxAttempts int
	// RetryDelay between publish attempts (doubled each time, up to MaxRetryDelay). Default 500ms.
	RetryDelay time.Duration
	// MaxRetryDelay caps the doubling of RetryDelay. Default 30s.
	MaxRetryDelay time.Duration
	// PollWait of one pull; shutdown takes at most this long. Default 2s; at
	// most AckWait/2, so that a live router's pin never lapses between pulls.
	PollWait time.Duration
	// OnRouted, if set, is called after each event was routed and acked (metrics, tests).
	OnRouted func(ev *schemas.Event, to []string)
	// OnRetry, if set, is called each time publishing an event failed and will be tried again.
	OnRetry func(ev *schemas.Event, tries int, err error)
	// Registerer receives the router's metrics (docs/metrics.md). Default: a
	// private registry, i.e. nowhere anyone scrapes.
	Registerer prometheus.Registerer
}

// Option customizes a Router.
type Option func(*Options)

// WithOptions sets every knob at once.
func WithOptions(o Options) Option { return func(to *Options) { *to = o } }

// WithRegisterer registers the router's metrics with r (nil: a private registry).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *Options) { o.Registerer = r }
}

// WithPollWait bounds one pull, and so how long shutdown waits (tests shorten it).
func WithPollWait(d time.Duration) Option { return func(o *Options) { o.PollWait = d } }

func (o Options) withDefaults() Options {
	if o.Durable == "" {
		o.Durable = "wxhub_router"
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.AckWait <= 0 {
		o.AckWait = 5 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 500 * time.Millisecond
	}
	if o.MaxRetryDelay <= 0 {
		o.MaxRetryDelay = 30 * time.Second
	}
	o.MaxRetryDelay = max(o.MaxRetryDelay, o.RetryDelay)
	if o.PollWait <= 0 {
		o.PollWait = 2 * time.Second
	}
	o.PollWait = min(o.PollWait, o.AckWait/2)
	return o
}

// Router routes events. SetRules may be called concurrently with Run.
type Router struct {
	b     *bus.Bus
	opts  Options
	log   *zap.Logger
	m     *metrics
	rules atomic.Pointer[ruleSet]
	// voices: the audio of voice messages to transcribe (transcribe.go)
	voices *media.Inbound
}

// New validates cfg and returns a Router on b; call Run to start it. log may be nil.
func New(cfg Config, b *bus.Bus, log *zap.Logger, opts ...Option) (*Router, error) {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	o = o.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	r := &Router{b: b, opts: o, log: log.Named("router"), m: newMetrics(o.Registerer)}
	r.voices = voiceCache(r)
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
		PinnedTTL:      ackWait,
	}
}

const priorityGroup = "router"

// Run routes events until ctx is done; the batch in hand is finished first.
//
// Events are routed in groups: whatever the pull has delivered when the
// router is ready for more (one event when idle, up to Batch under load). A
// group's route messages are all published before any ack is awaited, in the
// group's order on one connection, so JetStream stores them in arrival order
// and one user's events keep theirs; then every input is acked.
func (r *Router) Run(ctx context.Context) error {
	cfg := ConsumerConfig(r.opts.Durable, r.opts.Batch, r.opts.AckWait)
	var c jetstream.Consumer
	var lastSeq uint64 // the stream sequence of the last event routed
	declare := func(ctx context.Context) error {
		cc := cfg
		if lastSeq > 0 {
			// Declared again after a loss: go on after the last event routed,
			// not from the stream's first (it keeps days of events).
			cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, lastSeq+1
		}
		var err error
		c, err = r.b.JS().CreateOrUpdateConsumer(ctx, bus.StreamIn, cc)
		return err
	}
	// WXHUB_IN may not be there yet (NATS or the cluster still starting).
	if err := bus.WaitFor(ctx, r.log, "WXHUB_IN to declare the router's consumer", declare); err != nil {
		return fmt.Errorf("router: declare consumer: %w", err)
	}
	workCtx := context.WithoutCancel(ctx)
	r.log.Info("router started", zap.Int("rules", len(r.Rules().Rules)))
	group := make([]jetstream.Msg, 0, r.opts.Batch)
	for ctx.Err() == nil {
		batch, err := c.Fetch(r.opts.Batch, jetstream.FetchMaxWait(r.opts.PollWait), jetstream.FetchPriorityGroup(priorityGroup))
		if err != nil {
			if r.redeclared(ctx, declare) {
				continue
			}
			r.pause(ctx, err)
			continue
		}
		// Events already delivered are routed even during shutdown, in
		// order; handing them back would let a standby reorder them.
		msgs := batch.Messages()
		for open := true; open; {
			msg, ok := <-msgs
			if !ok {
				break
			}
			group = append(group[:0], msg)
		more:
			for len(group) < r.opts.Batch {
				select {
				case msg, ok := <-msgs:
					if !ok {
						open = false
						break more
					}
					group = append(group, msg)
				default:
					break more
				}
			}
			r.routeGroup(workCtx, group)
			if md, err := group[len(group)-1].Metadata(); err == nil {
				lastSeq = md.Sequence.Stream
			}
			clear(group) // drop references to routed messages
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if r.redeclared(ctx, declare) {
				continue
			}
			r.pause(ctx, err)
		}
	}
	r.log.Info("router stopped")
	return nil
}

// redeclared checks, after a failed pull, whether the consumer still exists
// and declares it again when a server lost it (restart without its state, an
// operator's delete); true when it did.
func (r *Router) redeclared(ctx context.Context, declare func(context.Context) error) bool {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.b.JS().Consumer(actx, bus.StreamIn, r.opts.Durable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false
	}
	if err := declare(actx); err != nil {
		r.log.Warn("consumer missing and cannot be declared yet", zap.Error(err))
		return false
	}
	r.log.Warn("consumer was missing; declared it again")
	return true
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

// pending is one event of a group on its way to WXHUB_ROUTE.
type pending struct {
	msg   jetstream.Msg
	ev    schemas.Event
	rs    *ruleSet // one rule set per event, even across a reload
	to    []string
	hits  []int
	ctx   context.Context // inside the event's "router.route" span
	end   tracing.End
	start time.Time
	route []*nats.Msg
	futs  []jetstream.PubAckFuture
	err   error
	tries int
}

// routeGroup routes msgs, in order. Each event gets its own span
// ("router.route"), whose traceparent its route messages carry. A publish
// error makes the failed event and every event after it in the group
// publish again (in order, after RetryDelay, doubled each time; JetStream
// drops the copies already stored by their Nats-Msg-Id); an event NATS refused
// for good MaxAttempts times goes to the DLQ, and the rest carry on.
func (r *Router) routeGroup(ctx context.Context, msgs []jetstream.Msg) {
	start := time.Now()
	// Retries of a group can outlast AckWait.
	stop := bus.KeepInProgress(r.opts.AckWait/2, msgs...)
	defer stop()
	evs := make([]*pending, 0, len(msgs))
	for _, msg := range msgs {
		if p := r.prepare(ctx, msg, start); p != nil {
			evs = append(evs, p)
		}
	}
	delay := r.opts.RetryDelay
	for len(evs) > 0 {
		r.publishAll(ctx, evs)
		ok := r.awaitAcks(evs)
		for _, p := range evs[:ok] {
			r.done(p)
		}
		evs = evs[ok:]
		if len(evs) == 0 {
			return
		}
		head := evs[0]
		head.tries++
		r.log.Warn("publishing to connectors failed", zap.String("event", head.ev.ID), zap.Int("try", head.tries),
			zap.Int("behind", len(evs)-1), zap.Error(head.err))
		if head.tries >= r.opts.MaxAttempts && refusedForGood(head.err) {
			r.deadLetter(head.ctx, head.msg, head.err.Error(), head.tries)
			r.finish(head, head.err)
			evs = evs[1:]
			delay = r.opts.RetryDelay
			continue
		}
		if r.opts.OnRetry != nil {
			r.opts.OnRetry(&head.ev, head.tries, head.err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return // left unacked: redelivered to the next router
		}
		delay = min(delay*2, r.opts.MaxRetryDelay)
	}
}

// refusedForGood reports a publish error that no retry can cure.
func refusedForGood(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrInvalidMsg)
}

// prepare decodes and matches one event and builds its route messages; a
// poison event is dead-lettered here and yields nil.
func (r *Router) prepare(ctx context.Context, msg jetstream.Msg, start time.Time) *pending {
	h := msg.Headers()
	sctx, end := tracing.StartSpanState(ctx, "router.route", h.Get(bus.HeaderTraceParent), h.Get(bus.HeaderTraceState))
	p := &pending{msg: msg, ctx: sctx, end: end, start: start}
	fail := func(reason string) *pending {
		attempt := 1
		if md, err := msg.Metadata(); err == nil {
			attempt = int(md.NumDelivered)
		}
		r.deadLetter(sctx, msg, reason, attempt)
		r.finish(p, errors.New(reason))
		return nil
	}
	if err := json.Unmarshal(msg.Data(), &p.ev); err != nil {
		return fail(fmt.Sprintf("invalid event JSON: %v", err))
	}
	if p.ev.ID == "" {
		return fail("event has no id")
	}
	p.rs = r.rules.Load()
	// The stored bytes go on as they are: the event was only read here, and
	// re-encoding would cost a marshal per event and drop fields this version
	// does not know. A voice message gains its transcript (transcribe.go).
	data := msg.Data()
	if p.rs.tr != nil && needsTranscript(&p.ev.Data) {
		data = r.transcribe(sctx, p.rs, &p.ev, data)
	}
	p.to, p.hits = p.rs.matchIdx(&p.ev)
	tracing.SetAttributes(sctx, tracing.String("wxhub.event", p.ev.ID), tracing.String("wxhub.to", strings.Join(p.to, ",")))
	if len(p.to) == 0 {
		return p
	}
	p.route = make([]*nats.Msg, len(p.to))
	for i, c := range p.to {
		var err error
		if p.route[i], err = r.b.RouteMsg(sctx, c, p.rs.cfg.Partitions, &p.ev, data); err != nil {
			return fail(err.Error())
		}
	}
	return p
}

// publishAll sends every route message of evs without waiting. A publish that
// fails at once (connection closed, message too large) stops the group there:
// nothing after it may reach the stream ahead of it.
func (r *Router) publishAll(ctx context.Context, evs []*pending) {
	failed := false
	for _, p := range evs {
		p.err = nil
		p.futs = p.futs[:0]
		if failed {
			p.err = errNotSent
			continue
		}
		for i, m := range p.route {
			f, err := r.b.PublishAsync(m)
			if err != nil {
				p.err = fmt.Errorf("to %s: %w", p.to[i], err)
				failed = true
				break
			}
			p.futs = append(p.futs, f)
		}
	}
}

var errNotSent = errors.New("not sent: an event ahead of it failed")

// publishTimeout bounds the wait for one group's acks; a lost ack is retried.
const publishTimeout = 10 * time.Second

// awaitAcks waits for every future of evs and returns how many events, from
// the first, have all their route messages stored.
func (r *Router) awaitAcks(evs []*pending) int {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	ok := len(evs)
	for i, p := range evs {
		for j, f := range p.futs {
			if _, err := bus.WaitAck(ctx, f); err != nil && p.err == nil {
				p.err = fmt.Errorf("to %s: %w", p.to[j], err)
			}
		}
		if p.err != nil && i < ok {
			ok = i
		}
	}
	return ok
}

// done acks a routed event. A plain ack suffices: if it is lost, the event
// comes again and its route messages are dropped as duplicates.
func (r *Router) done(p *pending) {
	if err := p.msg.Ack(); err != nil {
		r.log.Warn("ack failed; the event will be routed again (deduplicated)", zap.String("event", p.ev.ID), zap.Error(err))
	}
	r.countRouted(p.rs, p.hits, p.to)
	if r.log.Core().Enabled(zap.DebugLevel) {
		r.log.Debug("event routed", zap.String("event", p.ev.ID), zap.Strings("to", p.to), zap.Strings("rules", ruleNames(p.rs, p.hits)))
	}
	if r.opts.OnRouted != nil {
		r.opts.OnRouted(&p.ev, p.to)
	}
	r.finish(p, nil)
}

func (r *Router) finish(p *pending, err error) {
	r.m.seconds.Observe(time.Since(p.start).Seconds())
	p.end(err)
}

func ruleNames(rs *ruleSet, hits []int) []string {
	names := make([]string, len(hits))
	for i, h := range hits {
		names[i] = rs.rules[h].name
	}
	return names
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
