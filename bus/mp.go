package bus

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Official Account customer-service window: WeChat accepts a customer-service
// message (message/custom/send) only within 48 hours of the user's last
// interaction with the account (errcode 45015 otherwise). The gateway records
// each interaction it receives; the push API checks it before queueing.
const (
	// BucketMPWindow is the KV bucket of last interactions: key
	// MPWindowKey(account, openid), value MPInteraction. Its TTL is a little
	// longer than MPWindow, so an entry outlives the window it opens.
	BucketMPWindow = "wxhub_mp_window"
	// MPWindow is WeChat's customer-service window after an interaction.
	MPWindow = 48 * time.Hour
)

// MPInteraction is the value of BucketMPWindow: when the user last wrote to,
// followed, scanned or clicked the menu of the account.
type MPInteraction struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"` // the event type that opened the window, e.g. "text", "event.subscribe"
}

// Open reports whether a customer-service message may go out at now.
func (i MPInteraction) Open(now time.Time) bool {
	return !i.At.IsZero() && now.Sub(i.At) < MPWindow
}

// MPWindowKey is the key of an openid of an account. An openid is letters,
// digits, '-' and '_' (valid in a key as it is); anything else is hex-encoded
// so that a key is always valid and never collides.
func MPWindowKey(account, openid string) string {
	if openid == "" || strings.Trim(openid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		openid = "x" + hex.EncodeToString([]byte(openid))
	} else {
		openid = "o" + openid
	}
	return account + "." + openid
}

// MPWindowKV opens BucketMPWindow, creating it when it does not exist yet.
func (b *Bus) MPWindowKV(ctx context.Context) (jetstream.KeyValue, error) {
	return b.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: BucketMPWindow,
		Description: "wxhub: Official Account users' last interaction (48-hour customer-service window)",
		History:     1, TTL: MPWindow + time.Hour})
}
