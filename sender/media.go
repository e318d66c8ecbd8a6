package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/wecom"
)

// mediaMargin: a cached media id is reused only while it has this much of
// WeCom's 3 days left, so a message queued behind quiet hours does not reach
// WeCom after the id expired.
const mediaMargin = 6 * time.Hour

// mediaTypes are the message types whose object carries a media_id.
var mediaTypes = map[string]bool{"file": true, "image": true, "voice": true, "video": true}

// media resolves references to the media store (bus.MediaObjectField) in a
// message body to WeCom media ids, and serves bus.SubjectMediaFetch.
type media struct {
	client *wecom.Client
	bus    *bus.Bus
	clock  Clock
	log    *zap.Logger

	mu sync.Mutex
	kv jetstream.KeyValue // opened on first use; a failed open is tried again
}

func (m *media) ids(ctx context.Context) (jetstream.KeyValue, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kv != nil {
		return m.kv, nil
	}
	kv, err := m.bus.EnsureKV(ctx, jetstream.KeyValueConfig{
		Bucket: bus.BucketMediaIDs, Description: "wxhub: WeCom media ids of stored media, per app",
		History: 1, TTL: bus.MediaLifetime,
	})
	if err != nil {
		return nil, err
	}
	m.kv = kv
	return kv, nil
}

// resolve replaces {"<msgtype>": {"wxhub_object": sha}} in body with the
// object's media id for app, uploading the object when no valid id is cached.
// A body without a reference is returned as it is.
func (m *media) resolve(ctx context.Context, app App, token string, body map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	var msgtype string
	_ = json.Unmarshal(body["msgtype"], &msgtype)
	if !mediaTypes[msgtype] || body[msgtype] == nil {
		return body, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body[msgtype], &obj); err != nil {
		return body, nil // not ours to judge: WeCom answers a bad body
	}
	var sha string
	if err := json.Unmarshal(obj[bus.MediaObjectField], &sha); err != nil || sha == "" {
		return body, nil
	}
	if app.mp() {
		return nil, fmt.Errorf("%w: %s.%s: media objects are sent by WeCom apps only", wecom.ErrPermanent, msgtype, bus.MediaObjectField)
	}
	id, err := m.mediaID(ctx, app, token, msgtype, sha)
	if err != nil {
		return nil, err
	}
	delete(obj, bus.MediaObjectField)
	obj["media_id"], _ = json.Marshal(id)
	raw, _ := json.Marshal(obj)
	body[msgtype] = raw
	return body, nil
}

// mediaID is the cached media id of sha for app, or a fresh upload's.
func (m *media) mediaID(ctx context.Context, app App, token, typ, sha string) (string, error) {
	kv, err := m.ids(ctx)
	if err != nil {
		return "", err
	}
	key := bus.MediaIDKey(app.Name, sha)
	if e, err := kv.Get(ctx, key); err == nil {
		var rec bus.MediaIDRecord
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Type == typ && rec.ValidAt(m.clock.Now(), mediaMargin) {
			return rec.MediaID, nil
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("sender: media id %s: %w", key, err)
	}
	r, obj, err := m.bus.GetMedia(ctx, sha)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return "", fmt.Errorf("%w: %s: object %s is not in %s (expired or never stored)", wecom.ErrPermanent, bus.MediaObjectField, sha, bus.BucketMedia)
	}
	if err != nil {
		return "", err
	}
	defer r.Close()
	name := obj.Filename
	if name == "" {
		name = sha[:12]
	}
	id, err := m.client.UploadMedia(ctx, token, typ, path.Base(name), r)
	if err != nil {
		return "", err
	}
	rec, _ := json.Marshal(bus.MediaIDRecord{MediaID: id, Type: typ, CreatedAt: m.clock.Now()})
	if _, err := kv.Put(ctx, key, rec); err != nil {
		// The upload worked: send with it, the next message uploads again.
		m.log.Warn("media id not cached", zap.String("key", key), zap.Error(err))
	}
	m.log.Info("media uploaded", zap.String("app", app.Name), zap.String("object", sha), zap.String("type", typ))
	return id, nil
}

// forget drops the cached id of body's object after WeCom answered 40007
// (invalid media_id) for it, so the retry uploads again.
func (m *media) forget(ctx context.Context, app App, sha string) {
	if kv, err := m.ids(ctx); err == nil && sha != "" {
		_ = kv.Delete(ctx, bus.MediaIDKey(app.Name, sha))
	}
}

// objectOf is the media object a body references, or "".
func objectOf(body map[string]json.RawMessage) string {
	var msgtype, sha string
	_ = json.Unmarshal(body["msgtype"], &msgtype)
	if !mediaTypes[msgtype] {
		return ""
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body[msgtype], &obj) == nil {
		_ = json.Unmarshal(obj[bus.MediaObjectField], &sha)
	}
	return sha
}

// serveFetch answers bus.SubjectMediaFetch until ctx ends: it downloads an
// app's media (media/get) into the media store. Replicas share the work as
// one queue group.
func (s *Sender) serveFetch(ctx context.Context) (stop func(), err error) {
	sub, err := s.bus.Conn().QueueSubscribe(bus.SubjectMediaFetch, "wxhub-sender", func(msg *nats.Msg) {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			out := s.fetch(rctx, msg.Data)
			raw, _ := json.Marshal(out)
			_ = msg.Respond(raw)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("sender: subscribe %s: %w", bus.SubjectMediaFetch, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

func (s *Sender) fetch(ctx context.Context, data []byte) bus.MediaFetchReply {
	var req bus.MediaFetchRequest
	if err := json.Unmarshal(data, &req); err != nil || req.MediaID == "" {
		return bus.MediaFetchReply{Error: "want {\"app\": ..., \"media_id\": ...}"}
	}
	app, ok := s.cfg.app(req.App)
	if !ok {
		return bus.MediaFetchReply{Error: fmt.Sprintf("app %q is not a WeCom app or Official Account of this sender", req.App)}
	}
	// An Official Account's media (a customer's image, voice, video) come from
	// its own media/get, with the account's token.
	get := s.media.client.GetMedia
	if app.mp() {
		mc, ok := s.mpapi.(mpClient)
		if !ok {
			return bus.MediaFetchReply{Error: fmt.Sprintf("Official Account %q: no Official Account API client", req.App)}
		}
		get = mc.c.GetMedia
	}
	var md wecom.Media
	for attempt := 0; ; attempt++ {
		tok, err := s.tokens.Token(ctx, app)
		if err != nil {
			return bus.MediaFetchReply{Error: "token: " + err.Error()}
		}
		md, err = get(ctx, tok, req.MediaID)
		if (wecom.IsTokenExpired(err) || (app.mp() && isMPStaleToken(err))) && attempt == 0 {
			_ = s.tokens.Invalidate(ctx, app, tok)
			continue
		}
		if err != nil {
			return bus.MediaFetchReply{Error: err.Error()}
		}
		break
	}
	name := md.Filename
	if name == "" {
		name = req.MediaID
	}
	obj, err := s.bus.PutMedia(ctx, name, bytes.NewReader(md.Data))
	if err != nil {
		return bus.MediaFetchReply{Error: err.Error()}
	}
	return bus.MediaFetchReply{Object: obj.SHA256, Filename: obj.Filename, Size: obj.Size}
}

// isMPStaleToken: an Official Account's 40001 on a call is a token no longer
// the latest.
func isMPStaleToken(err error) bool {
	var ae *wecom.APIError
	return errors.As(err, &ae) && ae.Code == 40001
}

// errRetryMedia: WeCom rejected a cached media id (40007) before its time; the
// message is retried with a fresh upload.
var errRetryMedia = errors.New("sender: WeCom rejected a cached media id")

func isInvalidMedia(err error) bool {
	var ae *wecom.APIError
	return errors.As(err, &ae) && ae.Code == 40007
}
