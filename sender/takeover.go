package sender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
)

// Ordering and recovery across sender processes (docs/deployment.md):
//
//   - The consumer on WXHUB_OUT is pinned (priority group "sender"): one
//     sender process at a time receives messages; the others are standbys
//     that the server pins within PinnedTTL (AckWait/2) after the active one
//     stops pulling. One process therefore sees every message of a member and
//     keeps its lane in stream order; limits are shared through wxhub_limits.
//   - Messages the active process held (queued, deferred by a limit or a
//     backoff) are kept alive with InProgress; when it dies they are
//     redelivered within AckWait. A process that gets a new pin dispatches
//     nothing until every message pending on the consumer is in its hands or
//     parked: lanes are sorted by stream sequence, so the redelivered ones go
//     before later messages to the same member.
//   - Deferrals longer than HoldMax are parked in JetStream with NakWithDelay:
//     they survive any process, in the consumer's state. A parked message still
//     counts as ack-pending, so each park is recorded in wxhub_limits
//     (parked.<consumer>.<stream seq>) where every sender sees it.
//   - A process that loses its pin while alive (the server refuses its pin)
//     hands its queued messages back at once.

// PriorityGroup is the sender consumer's priority group.
const PriorityGroup = "sender"

// headerPinID is the header the server puts on messages of a pinned consumer.
const headerPinID = "Nats-Pin-Id"

// barrier holds dispatch after a takeover until every message pending on
// the consumer is in this process's hands or parked.
type barrier struct {
	on bool
}

// barrierMax is the safety bound of the takeover barrier: it only runs out
// when a park went unrecorded (a process died between its NakWithDelay and
// the record) or the previous holder is alive and keeps its messages.
func (s *Sender) barrierMax() time.Duration { return 5*s.cfg.AckWait + 10*time.Second }

// parkPrefix starts the wxhub_limits keys of the messages this consumer
// parked: parkPrefix + stream sequence -> the delay in milliseconds.
func (s *Sender) parkPrefix() string { return "parked." + s.cfg.Consumer + "." }

// park hands j back to JetStream for d (NakWithDelay) and records it, so that
// a takeover does not wait for a message nobody holds. Recorded after the nak:
// a record without a park would let a takeover go too early; a park without a
// record (a crash in between) only makes it wait up to barrierMax.
func (s *Sender) park(ctx context.Context, j *job, d time.Duration) error {
	if err := j.msg.NakWithDelay(d); err != nil {
		return err
	}
	seq := seqOf(j.msg)
	if seq == 0 || s.limitsKV == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.limitsKV.Put(pctx, s.parkPrefix()+strconv.FormatUint(seq, 10), []byte(strconv.FormatInt(d.Milliseconds(), 10))); err != nil {
		s.log.Warn("recording a parked message failed; a takeover may wait for it", zap.String("id", j.out.ID), zap.Error(err))
	}
	return nil
}

// watchParked mirrors the park records of this consumer in memory: stream
// sequence -> when JetStream redelivers it (server time: the record's own
// timestamp plus the delay).
func (s *Sender) watchParked(ctx context.Context) error {
	w, err := s.limitsKV.Watch(ctx, s.parkPrefix()+"*")
	if err != nil {
		return fmt.Errorf("sender: watch %s: %w", BucketLimits, err)
	}
	puts := 0
	apply := func(e jetstream.KeyValueEntry) {
		seq, err := strconv.ParseUint(strings.TrimPrefix(e.Key(), s.parkPrefix()), 10, 64)
		if err != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		ms, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if e.Operation() != jetstream.KeyValuePut || err != nil {
			delete(s.parked, seq)
			return
		}
		s.parked[seq] = e.Created().Add(time.Duration(ms) * time.Millisecond)
		if puts++; puts%1024 == 0 {
			s.pruneParked(time.Now())
		}
	}
	followWatch(ctx, w, apply)
	return nil
}

// consumerConfig is the sender's durable consumer on WXHUB_OUT.
func (s *Sender) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       s.cfg.Consumer,
		Description:   "wxhub sender: messages to WeCom",
		FilterSubject: bus.SubjectOutAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.MaxPending,
		// Retries are counted by the sender (quiet-hours deferrals must not use
		// them up); JetStream redelivers for ever until acked.
		MaxDeliver:     -1,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		// A standby is pinned this long after the active one stopped pulling.
		PinnedTTL: max(s.cfg.AckWait/2, time.Second),
		// File storage and the stream's replicas (Replicas 0 inherits them):
		// a restarted or failed-over NATS server keeps the consumer.
	}
}

// declare creates or updates the consumer, waiting while WXHUB_OUT does not
// exist yet. startSeq > 0 declares a lost consumer again from there rather
// than from the stream's first message (WXHUB_OUT keeps days of sent ones).
func (s *Sender) declare(ctx context.Context, startSeq uint64) error {
	cfg := s.consumerConfig()
	if startSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, startSeq
	}
	return bus.WaitFor(ctx, s.log, bus.StreamOut+" to declare consumer "+s.cfg.Consumer, func(actx context.Context) error {
		c, err := s.bus.JS().CreateOrUpdateConsumer(actx, bus.StreamOut, cfg)
		if err != nil {
			return fmt.Errorf("sender: consumer %s: %w", s.cfg.Consumer, err)
		}
		s.mu.Lock()
		s.cons = c
		s.mu.Unlock()
		return nil
	})
}

// consume (re)starts pulling from the declared consumer.
func (s *Sender) consume() error {
	s.mu.Lock()
	c, old := s.cons, s.cc
	s.mu.Unlock()
	if old != nil {
		old.Stop()
		<-old.Closed()
	}
	cc, err := c.Consume(s.accept, jetstream.PullMaxMessages(s.cfg.FetchBatch),
		jetstream.PullPriorityGroup(PriorityGroup),
		// Pull requests renewed well within PinnedTTL, or the pin would lapse.
		jetstream.PullExpiry(max(s.cfg.AckWait/4, time.Second)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			switch {
			case errors.Is(err, jetstream.ErrPinIDMismatch):
				s.lostPin()
			case !errors.Is(err, jetstream.ErrNoHeartbeat):
				s.log.Warn("consume", zap.Error(err))
			}
		}))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cc = cc
	s.mu.Unlock()
	return nil
}

// pruneParked forgets parks redelivered over an hour before now (their
// records expire with the bucket's TTL). Called with s.mu held.
func (s *Sender) pruneParked(now time.Time) {
	for seq, until := range s.parked {
		if until.Before(now.Add(-time.Hour)) {
			delete(s.parked, seq)
		}
	}
}

// lostPin: another process is pinned now (the server refused this one's pin).
// The messages held here and not in flight are handed back at once, in stream
// order, so that the new holder's barrier does not wait for this process to
// send them; the ones in flight finish here, and one put back later is handed
// back then (putBack).
func (s *Sender) lostPin() {
	s.mu.Lock()
	if s.pinID == "" {
		s.mu.Unlock()
		return
	}
	s.pinID, s.unpinned = "", true
	s.barrier.on = false
	s.barrierGen++
	tasks := s.sched.drain()
	for _, t := range tasks {
		delete(s.held, t.job)
	}
	s.mu.Unlock()
	slices.SortFunc(tasks, func(a, b *task) int { return cmp.Compare(a.seq, b.seq) })
	for _, t := range tasks {
		_ = t.job.msg.Nak()
		s.m.backlog.WithLabelValues(classNames[t.job.cls]).Dec()
	}
	s.log.Info("sender no longer pinned (another one took over); handed its queued messages back", zap.Int("handed_back", len(tasks)))
}

// takeOver notices a new pin (this process became the active sender) and
// holds dispatch until the messages the previous holder had are back.
func (s *Sender) takeOver(msg jetstream.Msg) {
	pin := msg.Headers().Get(headerPinID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if pin == "" || pin == s.pinID {
		return
	}
	s.pinID, s.unpinned = pin, false
	s.barrier.on = true
	s.barrierGen++
	go s.awaitPrevious(s.cons, s.barrierGen)
}

// elsewhere is how many messages pending on the consumer (info) are neither
// in this process's hands nor parked. Messages delivered after info was taken
// are left out: fresh ones come after info.Delivered.Stream, and the previous
// holder's come back below it and were pending in info either way. Called
// with s.mu held.
func (s *Sender) elsewhere(info *jetstream.ConsumerInfo) (elsewhere, held, parked int) {
	now := info.TimeStamp // server time, as the park records
	if now.IsZero() {
		now = time.Now()
	}
	mine := make(map[uint64]bool, len(s.held))
	for j := range s.held {
		if seq := seqOf(j.msg); seq <= info.Delivered.Stream {
			mine[seq] = true
		}
	}
	s.pruneParked(now)
	for seq, until := range s.parked {
		if until.After(now) && !mine[seq] && seq <= info.Delivered.Stream {
			parked++
		}
	}
	return info.NumAckPending - len(mine) - parked, len(mine), parked
}

// awaitPrevious lifts the barrier of takeover gen once elsewhere is 0
// (checked every 100 ms), or at barrierMax with a warning and
// wxhub_sender_takeover_barrier_timeouts_total.
func (s *Sender) awaitPrevious(c jetstream.Consumer, gen uint64) {
	start := time.Now()
	until := start.Add(s.barrierMax())
	lift := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.barrierGen != gen {
			return false // a newer takeover owns the barrier
		}
		s.barrier.on = false
		return true
	}
	logged, infoFailed := false, false
	for time.Now().Before(until) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx)
		cancel()
		if err != nil && !infoFailed {
			infoFailed = true
			s.log.Warn("sender pinned; reading the consumer's pending count failed, dispatch waits", zap.Error(err))
		}
		if err == nil {
			s.mu.Lock()
			stale := s.barrierGen != gen
			n, held, parked := s.elsewhere(info)
			s.mu.Unlock()
			if stale {
				return
			}
			if n <= 0 {
				if lift() {
					s.m.takeoverWait.Observe(time.Since(start).Seconds())
					s.log.Info("sender active (pinned)", zap.Int("held", held), zap.Int("parked", parked))
					s.kick()
				}
				return
			}
			if !logged {
				logged = true
				s.log.Info("sender active (pinned); waiting for the previous holder's messages before sending",
					zap.Int("pending_elsewhere", n), zap.Int("parked", parked), zap.Duration("at_most", time.Until(until).Round(time.Millisecond)))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lift() {
		s.m.takeoverWait.Observe(time.Since(start).Seconds())
		s.m.barrierGiveUp.Inc()
		s.log.Warn("sender active (pinned); stopped waiting for the previous holder's messages at the safety bound: a member's order may break once",
			zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
		s.kick()
	}
}

// guardEvery is how often the guard checks the consumer.
const guardEvery = 3 * time.Second

// guard declares the consumer again when NATS lost it (a server restarted
// without its state, an operator deleted it) and restarts pulling, checking
// every guardEvery and at once after a reconnect.
func (s *Sender) guard(ctx context.Context) {
	reconnected := make(chan struct{}, 1)
	remove := s.bus.OnReconnect(func() {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	})
	defer remove()
	tick := time.NewTicker(guardEvery)
	defer tick.Stop()
	var floor uint64 // the last ack floor seen
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-reconnected:
		}
		s.mu.Lock()
		c := s.cons
		s.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := c.Info(actx)
		cancel()
		switch {
		case err == nil:
			floor = info.AckFloor.Stream
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			s.log.Warn("consumer was missing; declaring it again", zap.Uint64("from_seq", floor+1))
			if err := s.declare(ctx, floor+1); err != nil {
				continue
			}
			if err := s.consume(); err != nil {
				s.log.Warn("consume after declaring again", zap.Error(err))
			}
		}
	}
}
