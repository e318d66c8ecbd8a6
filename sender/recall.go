package sender

import (
	"context"
	"errors"
	"fmt"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// cancelled reports whether a client cancelled j (bus.CancelKey), checked for
// pushed message/send messages right before each send. A split-off part of
// a message ("<id>-dnd") is cancelled with it.
func (s *Sender) cancelled(ctx context.Context, j *job) bool {
	if j.app.mp() || j.out.Data.Kind != schemas.KindMessage || j.out.Data.InReplyTo != "" || schemas.APIClient(j.out.Source) == "" {
		return false
	}
	for id := j.out.ID; id != ""; {
		if _, err := s.status.kv.Get(ctx, bus.CancelKey(id)); err == nil {
			return true
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			s.log.Warn("cancel mark read", zap.String("id", j.out.ID), zap.Error(err))
		}
		base, ok := strings.CutSuffix(id, "-dnd")
		if !ok {
			break
		}
		id = base
	}
	return false
}

// dropCancelled records a cancelled message as such and acks it unsent.
func (s *Sender) dropCancelled(ctx context.Context, t *task) {
	j := t.job
	s.putStatus(ctx, j, schemas.StatusCancelled, "cancelled before it was sent", nil)
	if err := j.msg.Ack(); err != nil {
		s.log.Warn("ack of cancelled message", zap.String("id", j.out.ID), zap.Error(err))
	}
	s.log.Info("message cancelled before sending", zap.String("id", j.out.ID))
	s.finish(t)
}

// afterSend: a cancel that landed while the message was being sent is
// answered by a recall at once (a recall message on WXHUB_OUT, so it waits
// for the corp's API limits like any call). A recall that succeeded marks
// its target "recalled".
func (s *Sender) afterSend(ctx context.Context, j *job, st schemas.MessageStatus) {
	switch j.out.Data.Kind {
	case schemas.KindRecall:
		s.markRecalled(ctx, j.out.Data.Target)
	case schemas.KindMessage:
		if st.WeComMsgID == "" || !s.cancelled(ctx, j) {
			return
		}
		body, _ := json.Marshal(map[string]string{"msgid": st.WeComMsgID})
		out := j.out
		out.ID = j.out.ID + "-recall"
		out.Type = "wxhub.out." + schemas.KindRecall
		out.Time = s.clock.Now()
		out.Data = schemas.OutboundData{App: j.out.Data.App, Kind: schemas.KindRecall, Priority: schemas.PriorityUrgent, Target: j.out.ID, Body: body}
		if _, err := s.bus.PublishJSON(context.WithoutCancel(ctx), j.msg.Subject(), out.ID, schemas.SchemaOutbound, out); err != nil {
			s.log.Error("recall of a message cancelled during its send not queued", zap.String("id", j.out.ID), zap.Error(err))
			return
		}
		s.log.Info("message cancelled during its send; recall queued", zap.String("id", j.out.ID))
	}
}

// markRecalled sets the status of outbound id to "recalled" (compare-and-set:
// clicks may be appended at the same time), through the status queue so that
// it lands after the "sent" record still queued for id.
func (s *Sender) markRecalled(_ context.Context, id string) {
	if id == "" {
		return
	}
	s.stq.update(id, func(ctx context.Context) error {
		err := s.updateStatus(ctx, id, func(st *schemas.MessageStatus) {
			st.Status, st.Reason = schemas.StatusRecalled, ""
			st.UpdatedAt = s.clock.Now().UTC()
		})
		if err != nil {
			return fmt.Errorf("recalled status not written: %w", err)
		}
		return nil
	})
}

// updateStatus applies f to the status of id with compare-and-set.
func (s *Sender) updateStatus(ctx context.Context, id string, f func(*schemas.MessageStatus)) error {
	for range clickCASAttempts {
		e, err := s.status.kv.Get(ctx, StatusKey(id))
		if err != nil {
			return err
		}
		var st schemas.MessageStatus
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return err
		}
		f(&st)
		data, _ := json.Marshal(st)
		if _, err := s.status.kv.Update(ctx, StatusKey(id), data, e.Revision()); err == nil {
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return err
		}
	}
	return fmt.Errorf("status of %s kept changing", id)
}
