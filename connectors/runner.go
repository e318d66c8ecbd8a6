package connectors

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// Outcome of one delivery.
type Outcome string

const (
	OutcomeAcked      Outcome = "acked"       // handled, replies published, event acked
	OutcomeRetry      Outcome = "retry"       // failed, redelivered after a backoff
	OutcomeDeadLetter Outcome = "dead_letter" // copied to the DLQ and terminated
	OutcomeRequeued   Outcome = "requeued"    // received during shutdown, handed back unhandled
	OutcomeAnswered   Outcome = "answered"    // AnswerUser/Tell: the user was told, event acked
)

// Result reports one delivery to Options.OnResult.
type Result struct {
	EventID   string
	Partition int
	Attempt   int
	Outcome   Outcome
	Replies   int
	Err       error // the handler's (or publishing's) error, if any
	Duration  time.Duration
}

// Stats are cumulative counters of a Runner.
type Stats struct {
	Received, Acked, Retried, DeadLettered, Requeued, Replies uint64
	Answered                                                  uint64 // also counted in Acked
	InFlight                                                  int64
}

// DefaultAckWait is Options.AckWait when unset: a killed worker's event goes
// to another process within it.
const DefaultAckWait = 6 * time.Second

// ConsumerName is the durable consumer of one partition of a connector:
// wxhub_<connector>_<partition>. Connectors in other languages use the same names.
func ConsumerName(connector string, partition int) string {
	return "wxhub_" + connector + "_" + strconv.Itoa(partition)
}

// ConsumerConfig is the consumer every process of the connector declares for
// one partition. MaxAckPending 1 is what keeps a user's events in order across
// processes: the server hands out the next event of a partition only after the
// previous one was acked or terminated (a Nak keeps it pending). The server's
// MaxDeliver is unlimited: the runner dead-letters at opts.MaxDeliver itself, so
// an event whose last attempt crashed is dead-lettered on the next delivery
// instead of being stranded in the work queue.
func ConsumerConfig(connector string, partition int, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(connector, partition),
		Description:   "wxhub connector " + connector + " partition " + strconv.Itoa(partition),
		FilterSubject: bus.RouteSubject(connector, partition),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 1,
		// WXHUB_ROUTE is a work queue: an acked event is gone from the stream,
		// so a consumer that starts over (after a restart of the embedded
		// server, which does not keep memory-state consumers) begins at the
		// first event not yet done: nothing lost, only what was in flight
		// delivered again, as after any crash. On disk the state would cost an
		// atomic file write several times a second per busy partition.
		// Delivery counts restart with it. On an external NATS the runner keeps
		// it on disk with the stream's replicas instead (see durableOnCluster),
		// and declares it again when missing.
		MemoryStorage: true,
	}
}

// durableOnCluster adapts cfg for an external NATS: the consumer's state on
// disk with the stream's replicas (Replicas 0 inherits them), so that a
// restarted or failed-over server still has it. The embedded server lives and
// dies with the runner's own process, which declares it again at start.
func durableOnCluster(cfg jetstream.ConsumerConfig, embedded bool) jetstream.ConsumerConfig {
	if !embedded {
		cfg.MemoryStorage = false
		cfg.Replicas = 0
	}
	return cfg
}

// declareConsumer creates or updates a partition's consumer. A consumer left
// by an older version keeps its state on disk, which the server will not
// change in place: it is replaced, which the work queue makes safe (see
// ConsumerConfig).
func declareConsumer(ctx context.Context, js jetstream.JetStream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, bus.StreamRoute, cfg)
	var ae *jetstream.APIError
	if err == nil || !errors.As(err, &ae) || !strings.Contains(ae.Description, "storage type can not be updated") {
		return c, err
	}
	if derr := js.DeleteConsumer(ctx, bus.StreamRoute, cfg.Durable); derr != nil {
		return nil, fmt.Errorf("%w (replacing it: %w)", err, derr)
	}
	return js.CreateOrUpdateConsumer(ctx, bus.StreamRoute, cfg)
}

// Runner runs one connector's handler. Create it with NewRunner, run it once.
type Runner struct {
	b     *bus.Bus
	opts  Options
	h     Handler
	log   *zap.Logger
	stage string
	sem   chan struct{} // worker slots
	m     *metrics      // nil without Options.Registerer

	received, acked, retried, dead, requeued, replies, answered atomic.Uint64
	inFlight                                                    atomic.Int64
}

// NewRunner checks opts and wraps h in opts.Middleware.
func NewRunner(b *bus.Bus, opts Options, h Handler) (*Runner, error) {
	if b == nil || h == nil {
		return nil, fmt.Errorf("%w: bus and handler are required", ErrOptions)
	}
	opts = opts.withSpec(h).withDefaults(b.Partitions())
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("%w: registerer: %w", ErrOptions, err)
	}
	return &Runner{
		m:     m,
		b:     b,
		opts:  opts,
		h:     Chain(h, opts.Middleware...),
		log:   opts.Logger.Named("connector").With(zap.String("connector", opts.Name)),
		stage: "connector:" + opts.Name,
		sem:   make(chan struct{}, opts.Concurrency),
	}, nil
}

// Run is NewRunner followed by Runner.Run.
func Run(ctx context.Context, b *bus.Bus, opts Options, h Handler) error {
	r, err := NewRunner(b, opts, h)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// Stats returns the counters so far; safe to call at any time.
func (r *Runner) Stats() Stats {
	return Stats{
		Received: r.received.Load(), Acked: r.acked.Load(), Retried: r.retried.Load(),
		DeadLettered: r.dead.Load(), Requeued: r.requeued.Load(), Replies: r.replies.Load(),
		Answered: r.answered.Load(), InFlight: r.inFlight.Load(),
	}
}

// Run declares the connector's consumers and handles events until ctx is done.
// Then it stops pulling, lets in-flight handlers finish (their ctx is cancelled
// after ShutdownTimeout), settles their events and returns nil. It returns an
// error only if the consumers cannot be declared.
func (r *Runner) Run(ctx context.Context) error {
	cons := make([]jetstream.Consumer, r.opts.Partitions)
	for p := range cons {
		// WXHUB_ROUTE may not exist yet (the hub that declares it starts
		// later, the cluster is electing): wait for it, do not exit.
		err := bus.WaitFor(ctx, r.log, fmt.Sprintf("%s to declare consumer %d", bus.StreamRoute, p), func(actx context.Context) error {
			c, err := declareConsumer(actx, r.b.JS(), r.consumerConfig(p))
			cons[p] = c
			return err
		})
		if err != nil {
			return fmt.Errorf("connectors: %s: declare consumer %d: %w", r.opts.Name, p, err)
		}
	}
	restart := make([]chan struct{}, len(cons))
	for p := range restart {
		restart[p] = make(chan struct{}, 1)
	}
	// Work started before shutdown finishes with workCtx, which outlives ctx by
	// the grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	lanesDone := make(chan struct{})
	go func() {
		select {
		case <-lanesDone:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(r.opts.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			r.log.Warn("shutdown grace period over; cancelling handlers", zap.Int64("in_flight", r.inFlight.Load()))
			cancelWork()
		case <-lanesDone:
		}
	}()

	r.log.Info("connector started", zap.Int("partitions", r.opts.Partitions), zap.Int("concurrency", r.opts.Concurrency),
		zap.Strings("consumes", r.opts.Consumes), zap.Strings("emits", r.opts.Emits))
	var wg sync.WaitGroup
	for p, c := range cons {
		wg.Go(func() { r.lane(ctx, workCtx, p, c, restart[p]) })
	}
	wg.Go(func() { r.guard(ctx, restart) })
	wg.Wait()
	close(lanesDone)
	r.log.Info("connector stopped", zap.Uint64("acked", r.acked.Load()))
	return nil
}

// lane consumes partition p; the consumer's MaxAckPending of 1 makes the server
// hand out the partition's next event only once this one is settled. One pull
// request stays open for several events (the server pushes the next as soon as
// the previous is acked), which saves the subscribe/pull/unsubscribe round trip
// per event that a Fetch costs.
func (r *Runner) lane(ctx, workCtx context.Context, p int, c jetstream.Consumer, restart <-chan struct{}) {
	for ctx.Err() == nil {
		it, err := c.Messages(jetstream.PullMaxMessages(lanePullBatch),
			jetstream.PullExpiry(max(r.opts.PollWait, time.Second)),
			jetstream.WithMessagesErrOnMissingHeartbeat(false))
		if err != nil {
			r.pause(ctx, "consume", p, err)
			continue
		}
		// Drain, not Stop: the event already delivered to this process is
		// still handed to process, which gives it back (Nak) at once when
		// shutting down instead of leaving it to AckWait.
		stop := context.AfterFunc(ctx, it.Drain)
		// The guard found the consumer gone and declared it again: pull anew
		// (the pull requests of the old one died with it).
		iterDone := make(chan struct{})
		go func() {
			select {
			case <-restart:
				it.Stop()
			case <-iterDone:
			}
		}()
		for {
			msg, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					r.pause(ctx, "next", p, err)
				}
				break
			}
			r.process(ctx, workCtx, p, msg)
		}
		close(iterDone)
		stop()
		it.Stop()
	}
}

// guardEvery is how often the guard checks that the consumers still exist.
const guardEvery = 3 * time.Second

// guard declares again a partition's consumer that vanished (a NATS server
// restarted without it, an operator deleted it) and restarts that lane's
// pull, checking every guardEvery and at once when the connection comes back:
// a connector never stalls for good behind a missing consumer.
func (r *Runner) guard(ctx context.Context, restart []chan struct{}) {
	reconnected := make(chan struct{}, 1)
	remove := r.b.OnReconnect(func() {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	})
	defer remove()
	tick := time.NewTicker(guardEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-reconnected:
		}
		for p := range restart {
			if ctx.Err() != nil {
				return
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := r.b.JS().Consumer(actx, bus.StreamRoute, ConsumerName(r.opts.Name, p))
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				if _, err = declareConsumer(actx, r.b.JS(), r.consumerConfig(p)); err == nil {
					r.log.Warn("consumer was missing; declared it again", zap.Int("partition", p))
					select {
					case restart[p] <- struct{}{}:
					default:
					}
				} else {
					r.log.Warn("consumer missing and cannot be declared yet", zap.Int("partition", p), zap.Error(err))
				}
			}
			cancel()
		}
	}
}

func (r *Runner) consumerConfig(p int) jetstream.ConsumerConfig {
	return durableOnCluster(ConsumerConfig(r.opts.Name, p, r.opts.AckWait), r.b.Embedded())
}

// lanePullBatch is how many events one pull request of a lane may bring in
// turn (MaxAckPending 1 still holds them to one at a time).
const lanePullBatch = 16

func (r *Runner) pause(ctx context.Context, what string, p int, err error) {
	r.log.Warn("pull failed; retrying", zap.String("op", what), zap.Int("partition", p), zap.Error(err))
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *Runner) process(ctx, workCtx context.Context, p int, msg jetstream.Msg) {
	r.received.Add(1)
	start := time.Now()
	r.m.received(r.opts.Name, start)
	res := Result{Partition: p}
	defer func() {
		res.Duration = time.Since(start)
		r.m.settled(r.opts.Name, res.Outcome, res.Duration)
		if r.opts.OnResult != nil {
			r.opts.OnResult(res)
		}
	}()

	// From receipt (including the wait for a worker) until settled.
	stopBeat := bus.KeepInProgress(r.opts.AckWait/3, msg)
	defer stopBeat()

	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		// Shutting down before a worker was free: hand it back unhandled; it is
		// still the head of its partition, so order holds.
		_ = msg.Nak()
		r.requeued.Add(1)
		res.Outcome = OutcomeRequeued
		return
	}
	// The slot is for the handler call only (Concurrency bounds the load on the
	// legacy system): it is given back before the replies are stored, so a
	// handler of another partition starts while this one waits for JetStream.
	// Held through that wait, the slots would cap a connector's rate and turn
	// every slow store into a queue for all partitions.
	r.m.running(r.opts.Name, 1)
	release := sync.OnceFunc(func() {
		r.m.running(r.opts.Name, -1)
		<-r.sem
	})
	defer release()
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)

	attempt := 1
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		attempt, seq = int(md.NumDelivered), md.Sequence.Stream
	}
	res.Attempt = attempt
	log := r.log.WithLazy(zap.Int("partition", p), zap.Int("attempt", attempt), zap.Uint64("seq", seq))

	if err := r.consumes(msg.Headers().Get(bus.HeaderSchema)); err != nil {
		res.Err = err
		res.Outcome = r.deadLetter(workCtx, log, msg, err.Error(), attempt)
		return
	}
	var ev schemas.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		res.Err = err
		res.Outcome = r.deadLetter(workCtx, log, msg, fmt.Sprintf("invalid event JSON: %v", err), attempt)
		return
	}
	res.EventID = ev.ID
	log = log.WithLazy(zap.String("event", ev.ID))
	if attempt > r.opts.MaxDeliver {
		// The previous attempts ended without an outcome: crashes or AckWait.
		res.Outcome = r.deadLetter(workCtx, log, msg, fmt.Sprintf("no outcome after %d deliveries (handler crashed or exceeded ack wait)", attempt-1), attempt-1)
		return
	}

	hctx := bus.ContextFromHeader(workCtx, msg.Headers())
	if sc, perr := bus.ParseTraceParent(bus.TraceParentFrom(hctx)); perr == nil {
		log = log.WithLazy(zap.String("trace_id", sc.TraceID))
	}
	hctx = WithLogger(hctx, log)
	hctx = context.WithValue(hctx, deliveryKey{}, Delivery{
		Connector: r.opts.Name, Subject: msg.Subject(), Partition: p, Attempt: attempt, StreamSeq: seq,
		MaxDeliver: r.opts.MaxDeliver,
	})
	replies, err := r.call(hctx, &ev)
	release()
	var ans *answerError
	var notice *retryError
	switch {
	case err == nil:
		res.Replies, err = r.publishReplies(hctx, &ev, seq, "", replies)
	case errors.As(err, &ans):
		answers := append(replies, ans.replies...)
		if ans.text != "" {
			answers = append(answers, Text(ev.Data.User, ans.text))
		}
		var perr error
		res.Replies, perr = r.publishReplies(hctx, &ev, seq, "answer/", answers)
		if perr != nil {
			err = perr // not told: retry (or DLQ) like any failure
			break
		}
		res.Err = err
		log.Warn("handler answered the user instead of succeeding", zap.Error(ans.err), zap.Int("replies", res.Replies))
		r.answered.Add(1)
		res.Outcome = r.ack(log, msg, OutcomeAnswered)
		return
	case errors.As(err, &notice) && !IsPermanent(err):
		if n, perr := r.publishReplies(hctx, &ev, seq, "notice/", notice.replies); perr != nil {
			log.Warn("notice not published", zap.Error(perr))
		} else {
			res.Replies = n
		}
	}
	res.Err = err
	switch {
	case err == nil:
		res.Outcome = r.ack(log, msg, OutcomeAcked)
		log.Debug("event handled", zap.Int("replies", res.Replies))
	case IsPermanent(err):
		res.Outcome = r.deadLetter(workCtx, log, msg, err.Error(), attempt)
	case attempt >= r.opts.MaxDeliver:
		res.Outcome = r.deadLetter(workCtx, log, msg, err.Error(), attempt)
	default:
		res.Outcome = r.retry(log, msg, attempt, err)
	}
}

func (r *Runner) ack(log *zap.Logger, msg jetstream.Msg, o Outcome) Outcome {
	// A plain ack, not DoubleAck: waiting for the server's confirmation would
	// add a round trip per event. The replies are already stored, so if this
	// ack is lost the server redelivers after AckWait, the handler runs again
	// and its replies are dropped as duplicates by Nats-Msg-Id (within the
	// out stream's 10 min window); the side effects must be idempotent anyway.
	if err := msg.Ack(); err != nil {
		log.Warn("ack failed; event may be redelivered", zap.Error(err))
	}
	r.acked.Add(1)
	return o
}

// call runs the handler, turning a panic into a retryable error.
func (r *Runner) call(ctx context.Context, ev *schemas.Event) (replies []Reply, err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("handler panicked", zap.String("event", ev.ID), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			replies, err = nil, fmt.Errorf("handler panic: %v", v)
		}
	}()
	return r.h.Handle(ctx, ev)
}

func (r *Runner) retry(log *zap.Logger, msg jetstream.Msg, attempt int, cause error) Outcome {
	d := r.opts.Backoff(attempt)
	log.Warn("handler failed; will retry", zap.Duration("delay", d), zap.Error(cause))
	if err := msg.NakWithDelay(d); err != nil {
		log.Warn("nak failed; the server redelivers after ack wait", zap.Error(err))
	}
	r.retried.Add(1)
	return OutcomeRetry
}

func (r *Runner) deadLetter(ctx context.Context, log *zap.Logger, msg jetstream.Msg, reason string, attempts int) Outcome {
	if err := r.b.DeadLetter(ctx, r.stage, msg, reason, attempts); err != nil {
		// Never term what is not safely in the DLQ.
		log.Error("dead-lettering failed; will retry", zap.Error(err))
		_ = msg.NakWithDelay(r.opts.Backoff(attempts))
		r.retried.Add(1)
		return OutcomeRetry
	}
	if err := msg.TermWithReason("dead-lettered"); err != nil {
		log.Warn("term failed; a redelivery will be dead-lettered again (deduplicated)", zap.Error(err))
	}
	log.Error("event dead-lettered", zap.String("reason", reason), zap.Int("attempts", attempts))
	r.dead.Add(1)
	return OutcomeDeadLetter
}

// publishReplies publishes every reply and waits for each ack. Message ids are
// event id + "/" + class + index (class "" for replies, "answer/" and
// "notice/"), so a retried event does not send a reply twice, and a notice
// never takes the id of the answer that follows it.
func (r *Runner) publishReplies(ctx context.Context, ev *schemas.Event, seq uint64, class string, replies []Reply) (int, error) {
	if len(replies) > 0 && !slices.Contains(r.opts.Emits, schemas.SchemaOutbound) {
		return 0, Permanent(fmt.Errorf("connector %s declares it emits %v, not %s, but returned %d replies", r.opts.Name, r.opts.Emits, schemas.SchemaOutbound, len(replies)))
	}
	base := ev.ID
	if base == "" {
		base = "route-" + strconv.FormatUint(seq, 10)
	}
	tp := bus.TraceParentFrom(ctx)
	for i, rep := range replies {
		out, err := r.outbound(ev, base+"/"+class+strconv.Itoa(i), i, rep, tp)
		if err != nil {
			return i, Permanent(err)
		}
		if _, err := r.b.PublishJSON(ctx, bus.OutSubject(out.Data.App), out.ID, schemas.SchemaOutbound, out); err != nil {
			return i, fmt.Errorf("publish reply %d: %w", i, err)
		}
		r.replies.Add(1)
	}
	return len(replies), nil
}

func (r *Runner) outbound(ev *schemas.Event, id string, i int, rep Reply, tp string) (schemas.Outbound, error) {
	app := rep.App
	if app == "" {
		app = ev.Data.App
	}
	if app == "" {
		return schemas.Outbound{}, fmt.Errorf("reply %d: no app (event has none either)", i)
	}
	kind := rep.Kind
	if kind == "" {
		kind = schemas.KindMessage
	}
	var body json.RawMessage
	switch b := rep.Body.(type) {
	case json.RawMessage:
		body = b
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return schemas.Outbound{}, fmt.Errorf("reply %d: body: %w", i, err)
		}
	}
	if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		return schemas.Outbound{}, fmt.Errorf("reply %d: body must be a JSON object", i)
	}
	var evTime *time.Time
	if !ev.Time.IsZero() {
		t := ev.Time
		evTime = &t
	}
	return schemas.Outbound{
		SpecVersion:     schemas.SpecVersion,
		ID:              id,
		Source:          "connector/" + r.opts.Name,
		Type:            "wxhub.out." + kind,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		TraceParent:     tp,
		Data: schemas.OutboundData{
			App: app, Kind: kind, Priority: rep.Priority, DedupKey: rep.DedupKey,
			InReplyTo: ev.ID, EventTime: evTime, Body: body,
		},
	}, nil
}
