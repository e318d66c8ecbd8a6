package sender

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// passive decides, for a reply to an Official Account event, whether the
// gateway answers it in the callback (see bus.PassiveRecord). true: the task
// was held back or finished here; false: send it now.
func (s *Sender) passive(ctx context.Context, t *task, now time.Time) bool {
	j := t.job
	if !j.app.mp() || j.out.Data.InReplyTo == "" || j.out.Data.Kind != schemas.KindMessage {
		return false
	}
	kv, err := s.passiveKV.Get(ctx, s.bus.MPPassiveKV)
	if err != nil {
		s.passiveRetry(t, now, err)
		return true
	}
	key := bus.PassiveKey(j.out.Data.InReplyTo)
	for range 3 { // a lost compare-and-set reads the record again
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false // the gateway is not waiting for this event
		}
		if err != nil {
			s.passiveRetry(t, now, err)
			return true
		}
		var rec bus.PassiveRecord
		_ = json.Unmarshal(e.Value(), &rec)
		switch rec.State {
		case bus.PassiveWaiting:
			if now.Before(rec.Until) {
				s.putBack(t, rec.Until) // the gateway may still answer it in the callback
				return true
			}
		case bus.PassivePassive:
			if rec.OutboundID == j.out.ID {
				s.deliveredPassively(ctx, t)
				return true
			}
			return false // another reply went passively; this one is custom-sent
		case bus.PassiveSender:
			return false
		}
		// waiting past until, or released: take it so the gateway cannot.
		v, _ := json.Marshal(bus.PassiveRecord{State: bus.PassiveSender})
		if _, err := kv.Update(ctx, key, v, e.Revision()); err == nil {
			return false
		}
	}
	s.passiveRetry(t, now, errors.New("passive-reply record keeps changing"))
	return true
}

func (s *Sender) passiveRetry(t *task, now time.Time, err error) {
	s.log.Warn("passive-reply record unavailable; retrying", zap.String("id", t.job.out.ID), zap.Error(err))
	s.putBack(t, now.Add(backoff(1, s.cfg.Retry.Base, s.cfg.Retry.Max, s.rnd)))
}

// deliveredPassively records a reply the gateway gave in the callback answer.
func (s *Sender) deliveredPassively(ctx context.Context, t *task) {
	j := t.job
	s.record(j, s.newStatus(j, schemas.StatusSent, "answered passively in the callback"))
	if err := s.ackSent(ctx, j); err != nil {
		s.log.Warn("ack after passive reply failed", zap.String("id", j.out.ID), zap.Error(err))
	}
	s.countSend(j.app.Name, resultSent, nil)
	s.finish(t)
}
