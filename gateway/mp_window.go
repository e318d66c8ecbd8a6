package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// nonInteractions are Official Account events that do not open WeChat's
// customer-service window: automatic reports and job results, not the user's act.
var nonInteractions = map[string]bool{"event.unsubscribe": true, "event.location": true, "event.view": true,
	"event.templatesendjobfinish": true, "event.masssendjobfinish": true}

// recordInteraction notes in BucketMPWindow that the user of an Official
// Account's callback just interacted, after the event was stored. A failure is
// logged, not returned: the event is safe, and the window check then errs on
// the side of refusing a custom message (the client falls back to a template).
func (g *Gateway) recordInteraction(ctx context.Context, ch *channel, d schemas.EventData, eventType string) {
	if ch.kind != schemas.ChannelMP || d.User == "" || nonInteractions[eventType] {
		return
	}
	kv, err := g.mp.window.Get(ctx, g.bus.MPWindowKV)
	if err == nil {
		rec, _ := json.Marshal(bus.MPInteraction{At: g.now().UTC(), Event: eventType})
		_, err = kv.Put(ctx, bus.MPWindowKey(ch.name, d.User), rec)
	}
	if err != nil {
		g.log.Warn("mp: interaction not recorded", zap.String("account", ch.name), zap.Error(err))
	}
}

// errWindowClosed: a customer-service message outside WeChat's 48-hour window.
var errWindowClosed = errors.New("outside WeChat's 48-hour customer-service window")

// checkWindow refuses a customer-service message to openid when the user has not
// interacted with the account in the last 48 hours (WeChat would answer 45015).
func (g *Gateway) checkWindow(ctx context.Context, account, openid string) error {
	kv, err := g.mp.window.Get(ctx, g.bus.MPWindowKV)
	if err != nil {
		return err
	}
	var last bus.MPInteraction
	e, err := kv.Get(ctx, bus.MPWindowKey(account, openid))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return err
	default:
		_ = json.Unmarshal(e.Value(), &last)
	}
	if last.Open(g.now()) {
		return nil
	}
	seen := "no interaction seen"
	if !last.At.IsZero() {
		seen = "last interaction " + last.At.Format(time.RFC3339)
	}
	return &windowClosedError{&pushError{status: http.StatusConflict, field: "touser", msg: fmt.Sprintf(
		"%s: %s of account %q (%s); send a template message instead (template_id and data)",
		errWindowClosed, openid, account, seen)}}
}

// windowClosedError is the push error of a closed window; the drop-in answers
// it with WeChat's own 45015.
type windowClosedError struct{ pe *pushError }

func (e *windowClosedError) Error() string { return e.pe.Error() }
func (e *windowClosedError) Unwrap() error { return e.pe }
