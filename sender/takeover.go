package sender

import (
	"context"
	"errors"
	"fmt"
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
//     nothing until the consumer's pending messages are all in its hands (or
//     AckWait + 1 s passed): lanes are sorted by stream sequence, so the
//     redelivered ones go before later messages to the same member.
//   - Quiet-hours deferrals longer than HoldMax are handed to JetStream with
//     NakWithDelay: they survive any process, in the consumer's state.

// PriorityGroup is the sender consumer's priority group.
const PriorityGroup = "sender"

// headerPinID is the header the server puts on messages of a pinned consumer.
const headerPinID = "Nats-Pin-Id"

// barrier holds dispatch after a takeover until every message pending on
// the consumer is in this process's hands, or until passes.
type barrier struct {
	until time.Time // wall clock; zero: no barrier
}

// wait is how long dispatch must still wait (0: go).
func (b *barrier) wait(now time.Time) time.Duration {
	if b.until.IsZero() || !now.Before(b.until) {
		b.until = time.Time{}
		return 0
	}
	return b.until.Sub(now)
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
			if !errors.Is(err, jetstream.ErrNoHeartbeat) && !errors.Is(err, jetstream.ErrPinIDMismatch) {
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

// takeOver notices a new pin (this process became the active sender) and
// holds dispatch until the messages the previous holder had are back
// (checked every 100 ms), at most AckWait + 1 s (a quiet-hours message parked
// in JetStream with NakWithDelay stays pending and is waited out once).
//
// The previous holder's messages are the pending ones before freshSeq, the
// first message delivered here for the first time: the consumer's pending
// count less the fresh ones (every sequence from freshSeq to the last
// delivered; nothing is acked while the barrier holds) must equal the ones
// this process holds before freshSeq.
func (s *Sender) takeOver(msg jetstream.Msg) {
	pin := msg.Headers().Get(headerPinID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if pin == "" || pin == s.pinID {
		return
	}
	s.pinID = pin
	s.freshSeq = 0
	s.barrier.until = time.Now().Add(s.cfg.AckWait + time.Second)
	c := s.cons
	go s.awaitPrevious(c, s.barrier.until)
}

func (s *Sender) awaitPrevious(c jetstream.Consumer, until time.Time) {
	logged := false
	for time.Now().Before(until) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx)
		cancel()
		if err == nil {
			s.mu.Lock()
			held := len(s.held)
			pending := info.NumAckPending
			if f := s.freshSeq; f > 0 {
				pending -= int(info.Delivered.Stream - f + 1)
				held = 0
				for j := range s.held {
					if seqOf(j.msg) < f {
						held++
					}
				}
			}
			if pending <= held {
				if s.barrier.until.Equal(until) {
					s.barrier.until = time.Time{}
				}
				s.mu.Unlock()
				s.kick()
				s.log.Info("sender active (pinned)", zap.Int("held", held))
				return
			}
			s.mu.Unlock()
			if !logged {
				logged = true
				s.log.Info("sender active (pinned); waiting for the previous holder's messages before sending",
					zap.Int("pending_elsewhere", pending-held), zap.Duration("at_most", time.Until(until).Round(time.Millisecond)))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.log.Warn("sender active (pinned); stopped waiting for the previous holder's messages (quiet-hours messages parked in JetStream count as pending)")
	s.kick()
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
