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
