package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// PINVerifiedWithin reports whether user entered their step-up PIN on the
// hub's PIN page within the last d (see docs/identity.md). A sensitive
// connector (payroll) calls it before answering and, on false, replies with a
// link to the PIN page instead of the data. It reads only the PIN's status in
// the wxhub_pin bucket, which a connector's NATS user may read
// (bus.ConnectorPermissions), never the PIN's hash. Safe for concurrent use.
func PINVerifiedWithin(ctx context.Context, b *bus.Bus, user string, d time.Duration) (bool, error) {
	kv, err := b.KV(ctx, bus.BucketPIN)
	if err != nil {
		return false, err
	}
	e, err := kv.Get(ctx, bus.PINStatusKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("connectors: PIN status of %s: %w", user, err)
	}
	var st schemas.PINStatus
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return false, fmt.Errorf("connectors: PIN status of %s: %w", user, err)
	}
	return st.VerifiedWithin(time.Now(), d), nil
}

// RequirePIN is middleware for a sensitive connector (payroll): an event from
// a user whose PIN was not verified within d is answered with a card linking
// to verifyURL (the hub's /pin/verify page) instead of reaching the handler;
// the user opens it, enters the PIN there (never in the chat) and asks again.
// Events without a user pass. A bus error is returned (the event is retried).
func RequirePIN(b *bus.Bus, d time.Duration, verifyURL string) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]Reply, error) {
			if ev.Data.User == "" {
				return next.Handle(ctx, ev)
			}
			ok, err := PINVerifiedWithin(ctx, b, ev.Data.User, d)
			if err != nil {
				return nil, err
			}
			if ok {
				return next.Handle(ctx, ev)
			}
			return []Reply{TextCard(ev.Data.User, "需要验证安全密码",
				fmt.Sprintf("此内容需要在 %d 分钟内验证过安全密码。请点击验证后再发送一次。", int(d.Minutes()+0.5)),
				verifyURL, "验证").WithPriority(schemas.PriorityUrgent)}, nil
		})
	}
}
