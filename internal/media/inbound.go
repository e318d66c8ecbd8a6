package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
)

// Fetch downloads an app's WeCom medium (media/get) into the hub's store and
// returns the stored object. The gateway fetches with its own token; the
// router asks the sender (SenderFetch).
type Fetch func(ctx context.Context, app, mediaID string) (bus.MediaObject, error)

// ErrWeComUnknown: WeCom does not know the media id (40007: wrong or past its 3 days).
var ErrWeComUnknown = errors.New("media: WeCom does not know the media id (wrong, or older than 3 days)")

// SenderFetch asks the sender (bus.SubjectMediaFetch), which holds the
// tokens, to download the medium into the store; while no sender listens it
// asks again until ctx ends.
func SenderFetch(b *bus.Bus) Fetch {
	return func(ctx context.Context, app, mediaID string) (bus.MediaObject, error) {
		req, _ := json.Marshal(bus.MediaFetchRequest{App: app, MediaID: mediaID})
		msg, err := b.Conn().RequestWithContext(ctx, bus.SubjectMediaFetch, req)
		// No sender yet (starting, restarting): ask again until ctx ends.
		for wait := 50 * time.Millisecond; errors.Is(err, nats.ErrNoResponders); wait = min(2*wait, time.Second) {
			select {
			case <-ctx.Done():
				return bus.MediaObject{}, fmt.Errorf("media: no sender answers %s: %w", bus.SubjectMediaFetch, ctx.Err())
			case <-time.After(wait):
			}
			msg, err = b.Conn().RequestWithContext(ctx, bus.SubjectMediaFetch, req)
		}
		if err != nil {
			return bus.MediaObject{}, fmt.Errorf("media: asking the sender for %s's medium: %w", app, err)
		}
		var rep bus.MediaFetchReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			return bus.MediaObject{}, fmt.Errorf("media: the sender's answer: %w", err)
		}
		if rep.Error != "" {
			if containsCode(rep.Error, 40007) {
				return bus.MediaObject{}, fmt.Errorf("%w: %s", ErrWeComUnknown, rep.Error)
			}
			return bus.MediaObject{}, fmt.Errorf("media: the sender: %s", rep.Error)
		}
		return bus.MediaObject{SHA256: rep.Object, Filename: rep.Filename, Size: rep.Size}, nil
	}
}

func containsCode(msg string, code int) bool {
	s := fmt.Sprint(code)
	for i := 0; i+len(s) <= len(msg); i++ {
		if msg[i:i+len(s)] == s && (i == 0 || msg[i-1] < '0' || msg[i-1] > '9') &&
			(i+len(s) == len(msg) || msg[i+len(s)] < '0' || msg[i+len(s)] > '9') {
			return true
		}
	}
	return false
}

// Inbound is the cache of inbound media: an app's WeCom media id mapped
// (bus.BucketMediaInbound) to its content in the store, fetched from WeCom on
// the first read only. Safe for concurrent use.
type Inbound struct {
	bus   *bus.Bus
	fetch Fetch

	mu sync.Mutex
	kv jetstream.KeyValue // opened on first use
}

// NewInbound returns the cache of b's media, filled by fetch.
func NewInbound(b *bus.Bus, fetch Fetch) *Inbound { return &Inbound{bus: b, fetch: fetch} }

// inboundRecord is the value of bus.BucketMediaInbound.
type inboundRecord struct {
	SHA256    string    `json:"sha256"`
	Filename  string    `json:"filename,omitempty"`
	FetchedAt time.Time `json:"fetched_at"`
}

func (c *Inbound) ids(ctx context.Context) (jetstream.KeyValue, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kv != nil {
		return c.kv, nil
	}
	kv, err := c.bus.EnsureKV(ctx, jetstream.KeyValueConfig{
		Bucket: bus.BucketMediaInbound, Description: "wxhub: inbound WeCom media ids -> stored content, per app",
		History: 1, TTL: bus.MediaLifetime,
	})
	if err != nil {
		return nil, err
	}
	c.kv = kv
	return kv, nil
}

// InboundKey is the key of an app's WeCom media id: <app>.<sha256 of the id>
// (WeCom's ids may hold characters a key may not).
func InboundKey(app, mediaID string) string {
	sum := sha256.Sum256([]byte(mediaID))
	return bus.Token(app) + "." + hex.EncodeToString(sum[:16])
}

// Open returns the content of app's WeCom medium mediaID, from the store when
// it was fetched before (cached true), else fetched from WeCom first. The
// caller closes the reader.
func (c *Inbound) Open(ctx context.Context, app, mediaID string) (rc io.ReadCloser, obj bus.MediaObject, cached bool, err error) {
	kv, err := c.ids(ctx)
	if err != nil {
		return nil, bus.MediaObject{}, false, err
	}
	key := InboundKey(app, mediaID)
	if e, err := kv.Get(ctx, key); err == nil {
		var rec inboundRecord
		if json.Unmarshal(e.Value(), &rec) == nil && rec.SHA256 != "" {
			r, obj, err := c.bus.GetMedia(ctx, rec.SHA256)
			if err == nil {
				if rec.Filename != "" {
					obj.Filename = rec.Filename
				}
				return r, obj, true, nil
			}
			// The content expired before the mapping: fetch again.
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, bus.MediaObject{}, false, fmt.Errorf("media: %s: %w", bus.BucketMediaInbound, err)
	}
	got, err := c.fetch(ctx, app, mediaID)
	if err != nil {
		return nil, bus.MediaObject{}, false, err
	}
	rec, _ := json.Marshal(inboundRecord{SHA256: got.SHA256, Filename: got.Filename, FetchedAt: time.Now().UTC()})
	_, _ = kv.Put(ctx, key, rec) // a lost record costs one more fetch
	r, obj, err := c.bus.GetMedia(ctx, got.SHA256)
	if err != nil {
		return nil, bus.MediaObject{}, false, err
	}
	if got.Filename != "" {
		obj.Filename = got.Filename
	}
	return r, obj, false, nil
}
