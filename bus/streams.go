package bus

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfigs returns the declared streams.
//
// Retention choices:
//   - WXHUB_IN: limits (7 days). The router's durable consumer tracks progress;
//     keeping acked events lets operations replay and inspect a day's traffic.
//   - WXHUB_ROUTE: work queue. Each connector has exactly one durable consumer on
//     its own wxhub.route.<connector>.> filter (filters never overlap), and a
//     message is removed when that consumer acks it. Unlike interest retention,
//     an event routed to a connector that is not running yet is kept until it
//     starts, not dropped; unlike limits retention, the stream holds only work not
//     yet done, so its size is the connectors' backlog. MaxAge still bounds it.
//   - WXHUB_OUT: limits (7 days), so the sender may use several consumers (per
//     priority or app) and the dashboard may browse what was sent.
//   - WXHUB_DLQ: limits (30 days), browsable and replayable; entries are deleted
//     one by one on replay or drop.
//
// hopDuplicateWindow bounds the duplicate window of WXHUB_ROUTE and WXHUB_OUT.
// Their duplicates come from our own redeliveries: the router republishes after
// its AckWait (30 s) when it died between publish and ack, a connector replies
// again after its AckWait (30 s) or sends a retry's notices again after its
// backoff (at most 1 min by default). Two minutes cover those, and each id held
// costs the server ~130 bytes at the message rate. WXHUB_IN keeps the full
// window: there it also stops a replayed callback.
const hopDuplicateWindow = 2 * time.Minute

func (b *Bus) StreamConfigs() []jetstream.StreamConfig {
	c := b.cfg
	base := func(name, subj, desc string, ret jetstream.RetentionPolicy, age time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subj},
			Retention:   ret,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      age,
			Duplicates:  c.DuplicateWindow,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true,
		}
	}
	in := base(StreamIn, SubjectInAll, "wxhub: inbound events from WeChat", jetstream.LimitsPolicy, c.MaxAge)
	route := base(StreamRoute, SubjectRouteAll, "wxhub: events routed to connectors", jetstream.WorkQueuePolicy, c.MaxAge)
	out := base(StreamOut, SubjectOutAll, "wxhub: messages to send to WeChat", jetstream.LimitsPolicy, c.MaxAge)
	route.Duplicates = min(c.DuplicateWindow, hopDuplicateWindow)
	out.Duplicates = route.Duplicates
	dlq := base(StreamDLQ, SubjectDLQAll, "wxhub: dead letters", jetstream.LimitsPolicy, c.DLQMaxAge)
	return []jetstream.StreamConfig{in, route, out, dlq}
}

// KVConfigs returns the declared buckets.
func (b *Bus) KVConfigs() []jetstream.KeyValueConfig {
	c := b.cfg
	return []jetstream.KeyValueConfig{
		{Bucket: BucketTokens, Description: "wxhub: access tokens", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketDND, Description: "wxhub: do-not-disturb windows", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketStatus, Description: "wxhub: outbound message status", History: 1, TTL: c.StatusTTL, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketAuth, Description: "wxhub: scan-to-login challenges", History: 1, TTL: c.AuthTTL, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketOIDCKeys, Description: "wxhub: OIDC signing keys", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketOIDC, Description: "wxhub: OIDC logins, codes and tokens", History: 1, TTL: OIDCTTL, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketPIN, Description: "wxhub: step-up PINs (argon2id hashes)", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: BucketDirectory, Description: "wxhub: WeCom address book cache", History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		// Per-key TTL (LimitMarkerTTL enables it): a revocation lives as long as its session would.
		{Bucket: BucketSessions, Description: "wxhub: revoked dashboard sessions", History: 1, LimitMarkerTTL: time.Minute, Storage: jetstream.FileStorage, Replicas: c.Replicas},
	}
}

// Declare creates or updates every stream and bucket; safe to repeat and to run
// from several processes at once.
//
// A stream or bucket that already has the declared settings is left alone:
// an update request rewrites the store's config even when nothing changed, and
// the server then races with consumers being created on it at the same moment
// (another process starting, a CLI attaching).
func (b *Bus) Declare(ctx context.Context) error {
	for _, sc := range b.StreamConfigs() {
		err := withCallTimeout(ctx, func(ctx context.Context) error {
			if s, err := b.js.Stream(ctx, sc.Name); err == nil && sameStream(s.CachedInfo().Config, sc) {
				return nil
			}
			_, err := b.js.CreateOrUpdateStream(ctx, sc)
			return err
		})
		if err != nil {
			return fmt.Errorf("bus: declare stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range b.KVConfigs() {
		if kc.Bucket == BucketTokens && !b.readsTokens() {
			continue // not this login's to see; the hub login declares it
		}
		err := withCallTimeout(ctx, func(ctx context.Context) error {
			if kv, err := b.js.KeyValue(ctx, kc.Bucket); err == nil {
				if st, err := kv.Status(ctx); err == nil && sameBucket(st, kc) {
					return nil
				}
			}
			_, err := b.js.CreateOrUpdateKeyValue(ctx, kc)
			return err
		})
		if err != nil {
			return fmt.Errorf("bus: declare bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// declareCallTimeout bounds one declaration: a JetStream API request lost
// while a cluster elects a leader is given up after it, and the start-up wait
// tries again soon, instead of waiting out the whole attempt.
const declareCallTimeout = 3 * time.Second

func withCallTimeout(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, declareCallTimeout)
	defer cancel()
	return f(cctx)
}

// sameStream compares the settings Declare sets; the server fills the rest.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates && have.Discard == want.Discard &&
		have.AllowDirect == want.AllowDirect && have.Description == want.Description
}

func sameBucket(have jetstream.KeyValueStatus, want jetstream.KeyValueConfig) bool {
	history := want.History
	if history == 0 {
		history = 1
	}
	return have.History() == int64(history) && have.TTL() == want.TTL
}
