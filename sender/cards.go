package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// cardSent adds what a card update or a recall needs later to the "sent"
// status of a message/send: when, to whom, and for a template card its
// task_id and response_code. For a card whose status is kept it also writes
// the task_id -> id mapping (bus.CardTaskKey) the click consumer looks up.
func (s *Sender) cardSent(ctx context.Context, j *job, st *schemas.MessageStatus, res sendResult) {
	if j.app.mp() || j.out.Data.Kind != schemas.KindMessage {
		return
	}
	now := s.clock.Now().UTC()
	st.SentAt = &now
	_ = json.Unmarshal(j.body["touser"], &st.ToUser)
	_ = json.Unmarshal(j.body["msgtype"], &st.MsgType)
	if st.MsgType != "template_card" {
		return
	}
	var card struct {
		TaskID string `json:"task_id"`
	}
	_ = json.Unmarshal(j.body["template_card"], &card)
	st.TaskID, st.ResponseCode = card.TaskID, res.ResponseCode
	if st.TaskID == "" || !keepsStatus(j.out, j.msg.Headers().Get(bus.HeaderReplayOf) != "", st.Status) {
		return
	}
	data, _ := json.Marshal(bus.CardTask{ID: j.out.ID})
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusPutTimeout)
	defer cancel()
	if _, err := s.status.kv.Put(pctx, bus.CardTaskKey(j.out.Data.App, st.TaskID), data); err != nil {
		s.log.Warn("card task mapping put", zap.String("id", j.out.ID), zap.Error(err))
	}
}

// Click consumer: a durable consumer on WXHUB_IN shared by every sender
// replica, filtered to template_card_event, appends each click to the status
// of the pushed card with compare-and-set. The router reads the same events
// through its own consumer, so connectors still get every click.
const (
	clicksConsumerSuffix = "-card-clicks"
	clickAckWait         = 30 * time.Second
	clickMaxDeliver      = 10
	// clickWaitDeliveries: a click whose card has no mapping or no "sent" record
	// yet (the status queue writes it off the send path) is retried this often,
	// clickRetryDelay apart, before it is taken for a card the hub did not push.
	clickWaitDeliveries = 5
	clickRetryDelay     = time.Second
	clickCASAttempts    = 8
)

// watchClicks starts the click consumer; the returned function stops it.
func (s *Sender) watchClicks(ctx context.Context) (func(), error) {
	cons, err := s.bus.JS().CreateOrUpdateConsumer(ctx, bus.StreamIn, jetstream.ConsumerConfig{
		Durable:       s.cfg.Consumer + clicksConsumerSuffix,
		Description:   "wxhub sender: template card clicks recorded in the card's status",
		FilterSubject: bus.CardEventFilter,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       clickAckWait,
		MaxDeliver:    clickMaxDeliver,
	})
	if err != nil {
		return nil, fmt.Errorf("sender: click consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { s.onClick(ctx, m) })
	if err != nil {
		return nil, fmt.Errorf("sender: click consume: %w", err)
	}
	return cc.Stop, nil
}

func (s *Sender) onClick(ctx context.Context, m jetstream.Msg) {
	var ev schemas.Event
	if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.Data.TaskID == "" {
		_ = m.Ack() // not a card click we can place; the router still has it
		return
	}
	retry, err := s.recordClick(ctx, ev)
	switch {
	case err != nil:
		s.log.Warn("card click not recorded; will retry", zap.String("event", ev.ID), zap.Error(err))
		_ = m.NakWithDelay(clickRetryDelay)
	case retry:
		if md, merr := m.Metadata(); merr == nil && md.NumDelivered >= clickWaitDeliveries {
			_ = m.Ack() // a card the hub did not push (or an answer's): nothing to record
			return
		}
		_ = m.NakWithDelay(clickRetryDelay)
	default:
		_ = m.Ack()
	}
}

// recordClick appends ev's click to its card's status. retry is true when the
// card is not (yet) known as a sent pushed message.
func (s *Sender) recordClick(ctx context.Context, ev schemas.Event) (retry bool, err error) {
	kv := s.status.kv
	e, err := kv.Get(ctx, bus.CardTaskKey(ev.Data.App, ev.Data.TaskID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var ct bus.CardTask
	if err := json.Unmarshal(e.Value(), &ct); err != nil || ct.ID == "" {
		return false, nil // unreadable mapping: nothing to append to
	}
	at := ev.Time
	if at.IsZero() {
		at = s.clock.Now()
	}
	click := schemas.CardClick{User: ev.Data.User, Key: ev.Data.EventKey, ResponseCode: ev.Data.ResponseCode, Time: at.UTC()}
	for range clickCASAttempts {
		se, err := kv.Get(ctx, StatusKey(ct.ID))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		var st schemas.MessageStatus
		if err := json.Unmarshal(se.Value(), &st); err != nil {
			return false, nil
		}
		if st.SentAt == nil {
			return true, nil // the "sent" record is still in the status queue
		}
		for _, c := range st.Clicks {
			if click.ResponseCode != "" && c.ResponseCode == click.ResponseCode {
				return false, nil // a redelivery of a click already recorded
			}
		}
		st.AddClick(click)
		st.UpdatedAt = s.clock.Now().UTC()
		data, _ := json.Marshal(st)
		if _, err := kv.Update(ctx, StatusKey(ct.ID), data, se.Revision()); err == nil {
			return false, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return false, err
		}
	}
	return false, fmt.Errorf("status of %s kept changing", ct.ID)
}

// isWrongSequence: a compare-and-set lost to another writer.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
