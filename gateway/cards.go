package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// Card updates and recalls of pushed messages: the gateway checks and records
// the request in the message's status (compare-and-set) and queues the call
// for the sender, the only component that calls WeCom's send APIs.

// recallWindow: WeCom recalls only messages sent in the last 24 hours.
const recallWindow = 24 * time.Hour

// dropInCardCode prefixes the response_code the drop-in send answers for a
// template card: it names the hub's message, whose newest unused WeCom code
// the drop-in update_template_card then spends.
const dropInCardCode = "wxhubcard."

// cardUpdateRequest is POST /api/v1/messages/{id}/card (schemas/card_update.v1.json).
type cardUpdateRequest = schemas.CardUpdate

// cardAccepted answers a card update or a recall: the message's status and the
// id of the queued call (its own status is readable too).
type cardAccepted struct {
	schemas.MessageStatus
	CallID string `json:"call_id,omitempty"`
}

func (g *Gateway) updateCardHandler(w http.ResponseWriter, r *http.Request) {
	key, body, ok := g.readAPIRequest(w, r)
	if !ok {
		return
	}
	if err := validateBody("card_update.v1", body); err != nil {
		writePushError(w, err)
		return
	}
	var req cardUpdateRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writePushError(w, badField("", "%v", err))
		return
	}
	acc, err := g.updateCard(callerTrace(r), key, r.PathValue("id"), req)
	g.metrics.pushes.WithLabelValues(key.Name, "card_update", resultLabel(err)).Inc()
	if err != nil {
		writePushError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acc)
}

func (g *Gateway) recallHandler(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
		return
	}
	acc, err := g.recall(callerTrace(r), key, r.PathValue("id"))
	g.metrics.pushes.WithLabelValues(key.Name, "recall", resultLabel(err)).Inc()
	if err != nil {
		writePushError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acc)
}

func conflict(format string, a ...any) error {
	return &pushError{status: http.StatusConflict, msg: fmt.Sprintf(format, a...)}
}

func gone(format string, a ...any) error {
	return &pushError{status: http.StatusGone, msg: fmt.Sprintf(format, a...)}
}

var errNotFound = &pushError{status: http.StatusNotFound, msg: "no such message"}

// owned reads the status of id if key may act on it (its sender or an admin);
// another client's message is as unknown as a missing one.
func (g *Gateway) owned(ctx context.Context, kv jetstream.KeyValue, key *APIKey, id string) (schemas.MessageStatus, uint64, error) {
	if id == "" || strings.HasPrefix(id, "dedup_") {
		return schemas.MessageStatus{}, 0, errNotFound
	}
	e, err := kv.Get(ctx, bus.StatusKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return schemas.MessageStatus{}, 0, errNotFound
	}
	if err != nil {
		return schemas.MessageStatus{}, 0, err
	}
	var st schemas.MessageStatus
	if json.Unmarshal(e.Value(), &st) != nil || st.Status == "" || !(key.Admin || st.Client == key.Name) {
		return schemas.MessageStatus{}, 0, errNotFound
	}
	return st, e.Revision(), nil
}

// casAttempts bounds compare-and-set retries against concurrent writers (clicks).
const casAttempts = 8

func isCASConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// updateCard spends the newest unused response code of card id and queues
// message/update_template_card for all its recipients or req.UserIDs.
func (g *Gateway) updateCard(ctx context.Context, key *APIKey, id string, req cardUpdateRequest) (cardAccepted, error) {
	hasCard := len(req.TemplateCard) > 0 && string(req.TemplateCard) != "null"
	hasButton := req.Button != nil && req.Button.ReplaceName != ""
	switch {
	case hasCard == hasButton:
		return cardAccepted{}, badField("", "give either template_card or button.replace_name")
	case hasCard && req.TemplateCard[0] != '{':
		return cardAccepted{}, badField("template_card", "must be an object")
	}
	kv, err := g.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return cardAccepted{}, err
	}
	now := g.now().UTC()
	for range casAttempts {
		st, rev, err := g.owned(ctx, kv, key, id)
		if err != nil {
			return cardAccepted{}, err
		}
		switch {
		case st.Status == schemas.StatusQueued || st.Status == schemas.StatusDeferred:
			return cardAccepted{}, conflict("message %s is %s: a card can be updated once it was sent", id, st.Status)
		case st.MsgType != "template_card":
			return cardAccepted{}, conflict("message %s is not a template card", id)
		case st.Status == schemas.StatusRecalled:
			return cardAccepted{}, conflict("message %s was recalled", id)
		}
		code, ok := st.UnusedCode(now)
		if !ok {
			if allExpired(st, now) {
				return cardAccepted{}, gone("card %s can no longer be updated: WeCom's response codes last 72 hours", id)
			}
			return cardAccepted{}, conflict("card %s has no unused response_code (each code updates it once; a click brings a new one)", id)
		}
		if !keyAllows(key, st.App) {
			return cardAccepted{}, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not use app %q", key.Name, st.App)}
		}
		st.UsedCodes = append(st.UsedCodes, code)
		st.UpdatedAt = now
		data, _ := json.Marshal(st)
		if _, err := kv.Update(ctx, bus.StatusKey(id), data, rev); err != nil {
			if isCASConflict(err) {
				continue
			}
			return cardAccepted{}, err
		}
		body := map[string]any{"response_code": code}
		if len(req.UserIDs) > 0 {
			body["userids"] = req.UserIDs
		} else {
			body["atall"] = 1
		}
		if hasCard {
			body["template_card"] = req.TemplateCard
		} else {
			body["button"] = map[string]string{"replace_name": req.Button.ReplaceName}
		}
		raw, _ := json.Marshal(body)
		call, err := g.queueCall(ctx, key, st.App, schemas.KindCardUpdate, id, raw)
		if err != nil {
			// Not queued: give the code back, so that the client's retry can spend it.
			g.unuseCode(context.WithoutCancel(ctx), kv, id, code)
			return cardAccepted{}, err
		}
		return cardAccepted{MessageStatus: st, CallID: call}, nil
	}
	return cardAccepted{}, conflict("status of %s kept changing; retry", id)
}

// allExpired: the card has codes, all older than WeCom's 72 hours.
func allExpired(st schemas.MessageStatus, now time.Time) bool {
	newest := time.Time{}
	if st.SentAt != nil && st.ResponseCode != "" {
		newest = *st.SentAt
	}
	for _, c := range st.Clicks {
		if c.ResponseCode != "" && c.Time.After(newest) {
			newest = c.Time
		}
	}
	return !newest.IsZero() && now.Sub(newest) > schemas.CardCodeLifetime
}

func (g *Gateway) unuseCode(ctx context.Context, kv jetstream.KeyValue, id, code string) {
	for range casAttempts {
		e, err := kv.Get(ctx, bus.StatusKey(id))
		if err != nil {
			return
		}
		var st schemas.MessageStatus
		if json.Unmarshal(e.Value(), &st) != nil {
			return
		}
		kept := st.UsedCodes[:0]
		for _, c := range st.UsedCodes {
			if c != code {
				kept = append(kept, c)
			}
		}
		st.UsedCodes = kept
		data, _ := json.Marshal(st)
		if _, err := kv.Update(ctx, bus.StatusKey(id), data, e.Revision()); err == nil || !isCASConflict(err) {
			return
		}
	}
}

// queueCall queues a card update or recall acting on message target; the
// call's id is "<target>-<kind>-<n>" style random (its own status is kept).
func (g *Gateway) queueCall(ctx context.Context, key *APIKey, app, kind, target string, body []byte) (string, error) {
	status, err := g.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return "", err
	}
	id := newMessageID()
	rec, _ := json.Marshal(schemas.MessageStatus{ID: id, App: app, Client: key.Name, Status: schemas.StatusQueued, UpdatedAt: g.now().UTC()})
	if _, err := status.Create(ctx, bus.StatusKey(id), rec); err != nil {
		return "", err
	}
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "api/" + key.Name, Type: "wxhub.out." + kind,
		Time: g.now().UTC(), DataContentType: "application/json", TraceParent: bus.TraceParentFrom(ctx),
		Data: schemas.OutboundData{App: app, Kind: kind, Priority: schemas.PriorityUrgent, Target: target, Body: body},
	}
	if err := g.publish(ctx, bus.OutSubject(app), id, schemas.SchemaOutbound, out); err != nil {
		status.Delete(context.WithoutCancel(ctx), bus.StatusKey(id))
		return "", err
	}
	return id, nil
}

// recall takes back message id: a sent one through message/recall (within 24
// hours), a queued or deferred one by a cancel mark the sender checks right
// before sending (bus.CancelKey).
func (g *Gateway) recall(ctx context.Context, key *APIKey, id string) (cardAccepted, error) {
	kv, err := g.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return cardAccepted{}, err
	}
	now := g.now().UTC()
	for range casAttempts {
		st, rev, err := g.owned(ctx, kv, key, id)
		if err != nil {
			return cardAccepted{}, err
		}
		switch st.Status {
		case schemas.StatusRecalled, schemas.StatusCancelled:
			return cardAccepted{MessageStatus: st}, nil // already done: the same answer again
		case schemas.StatusFailed, schemas.StatusDropped:
			return cardAccepted{}, conflict("message %s was not delivered (%s): nothing to recall", id, st.Status)
		case schemas.StatusQueued, schemas.StatusDeferred:
			if _, err := kv.Create(ctx, bus.CancelKey(id), []byte(now.Format(time.RFC3339Nano))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return cardAccepted{}, err
			}
			st.Status, st.Reason, st.UpdatedAt = schemas.StatusCancelled, "cancelled by "+key.Name, now
			data, _ := json.Marshal(st)
			if _, err := kv.Update(ctx, bus.StatusKey(id), data, rev); err != nil {
				if isCASConflict(err) {
					continue // the sender moved it on: look again (it may be sent by now)
				}
				return cardAccepted{}, err
			}
			return cardAccepted{MessageStatus: st}, nil
		}
		// Sent.
		if st.SentAt != nil && now.Sub(*st.SentAt) > recallWindow {
			return cardAccepted{}, gone("message %s was sent at %s: WeCom recalls only messages sent in the last 24 hours", id, st.SentAt.Format(time.RFC3339))
		}
		if st.WeComMsgID == "" {
			return cardAccepted{}, conflict("message %s has no WeCom msgid to recall (an appchat or Official Account message)", id)
		}
		if !keyAllows(key, st.App) {
			return cardAccepted{}, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not use app %q", key.Name, st.App)}
		}
		body, _ := json.Marshal(map[string]string{"msgid": st.WeComMsgID})
		call, err := g.queueCall(ctx, key, st.App, schemas.KindRecall, id, body)
		if err != nil {
			return cardAccepted{}, err
		}
		return cardAccepted{MessageStatus: st, CallID: call}, nil
	}
	return cardAccepted{}, conflict("status of %s kept changing; retry", id)
}
