package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RevokeSession records in the wxhub_sessions bucket that the dashboard
// session with this id (its random nonce) is logged out; the record expires
// when the session would have (until), so the list stays small. Every
// dashboard replica refuses a revoked session (SessionRevoked).
func RevokeSession(ctx context.Context, kv jetstream.KeyValue, id string, until time.Time, now time.Time) error {
	ttl := until.Sub(now) + time.Minute // a little longer than any clock skew
	if ttl < time.Second {
		return nil // expired anyway
	}
	_, err := kv.Create(ctx, sessionKey(id), []byte(until.UTC().Format(time.RFC3339)), jetstream.KeyTTL(ttl))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("bus: revoke session: %w", err)
	}
	return nil
}

// SessionRevoked reports whether the session id was revoked by RevokeSession.
func SessionRevoked(ctx context.Context, kv jetstream.KeyValue, id string) (bool, error) {
	_, err := kv.Get(ctx, sessionKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("bus: session revoked: %w", err)
	}
	return true, nil
}

// sessionKey is the KV key of a session id: "s_" + the token-safe id.
func sessionKey(id string) string { return "s_" + Token(id) }
