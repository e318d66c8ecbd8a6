package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
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

// Passive replies: the gateway may answer an Official Account's callback with
// the reply itself (within WeChat's 5 s) instead of "success", and then the
// sender must not also send it. One record per event in BucketMPPassive,
// changed only by compare-and-set, decides who delivers the event's first
// reply:
//
//	gateway, before publishing the event:  create  {state: waiting, until}
//	gateway, a reply arrived in time:      waiting -> {state: passive, outbound_id}
//	gateway, no reply in time:             waiting -> {state: released}
//	sender, a reply to that event:         waiting (past until) or released -> {state: sender}
//
// The sender holds a reply while the record is waiting and not past until;
// a reply whose record is passive with its own id was delivered by the
// gateway and is recorded sent without a call. No record: the sender sends.
const (
	// BucketMPPassive holds PassiveRecord values under PassiveKey(event id).
	BucketMPPassive = "wxhub_mp_passive"

	PassiveWaiting  = "waiting"
	PassivePassive  = "passive"
	PassiveReleased = "released"
	PassiveSender   = "sender"
)

// PassiveRecord is the value of BucketMPPassive.
type PassiveRecord struct {
	State      string    `json:"state"`
	Until      time.Time `json:"until,omitempty"`       // waiting: when the gateway gives up at the latest
	OutboundID string    `json:"outbound_id,omitempty"` // passive: the reply the gateway delivered
	Reply      []byte    `json:"reply,omitempty"`       // passive: the plain reply XML, answered again to WeChat's retries
}

// PassiveKey is the key of an event's record (the event id hashed: ids may
// hold characters a key may not).
func PassiveKey(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return "e" + hex.EncodeToString(sum[:16])
}

// MPPassiveKV opens BucketMPPassive, creating it when it does not exist yet.
// Records live 10 minutes: far longer than a callback and its retries.
func (b *Bus) MPPassiveKV(ctx context.Context) (jetstream.KeyValue, error) {
	return b.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: BucketMPPassive,
		Description: "wxhub: Official Account passive replies (who delivers an event's first reply)",
		History:     1, TTL: 10 * time.Minute})
}

// KVHandle opens a bucket once and keeps the handle: opening asks the server
// for the bucket's info, a round trip that a hot path should not repeat.
// The zero value is ready; safe for concurrent use.
type KVHandle struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

// Get returns the handle, opening it with open on first use (and again after a failure).
func (h *KVHandle) Get(ctx context.Context, open func(context.Context) (jetstream.KeyValue, error)) (jetstream.KeyValue, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kv != nil {
		return h.kv, nil
	}
	kv, err := open(ctx)
	if err != nil {
		return nil, err
	}
	h.kv = kv
	return kv, nil
}
