package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Media: files on their way to or from WeChat. Only the sender holds access
// tokens, so a connector puts a file into the object store BucketMedia and
// references it in a reply (msgtype file/image/voice/video with MediaObjectField
// instead of media_id); the sender resolves the object to a WeCom media_id
// (media/upload, cached per app in BucketMediaIDs for its 3-day validity). The
// other way, a connector asks the sender on SubjectMediaFetch to download an
// inbound message's media (media/get) into BucketMedia.
const (
	// BucketMedia is the JetStream object store of media contents, each object
	// named by the SHA-256 (hex) of its content. Objects expire after MediaTTL.
	BucketMedia = "wxhub_media"
	// BucketMediaIDs is the KV bucket of WeCom media ids: key MediaIDKey(app,
	// sha256), value a MediaIDRecord.
	BucketMediaIDs = "wxhub_media_ids"
	// BucketMediaInbound is the KV bucket of inbound media already fetched
	// from WeCom: key <app>.<hash of WeCom's media id>, value the stored
	// object (internal/media.Inbound). Entries live MediaLifetime.
	BucketMediaInbound = "wxhub_media_inbound"
	// SubjectMediaFetch is the sender's request/reply service: a
	// MediaFetchRequest answered by a MediaFetchReply.
	SubjectMediaFetch = "wxhub.media.fetch"
	// MediaObjectField, in a reply's media object ({"file": {"wxhub_object":
	// "<sha256>"}}), names the object in BucketMedia the sender uploads.
	MediaObjectField = "wxhub_object"
	// MediaLifetime is how long WeCom keeps temporary media (media/upload).
	MediaLifetime = 72 * time.Hour
	// MediaTTL bounds how long objects stay in BucketMedia.
	MediaTTL = 7 * 24 * time.Hour
	// metaFilename: object metadata key holding the file's name.
	metaFilename = "filename"
)

// MediaIDRecord is the value of BucketMediaIDs: the media id WeCom gave an
// uploaded object, and when (WeCom keeps it MediaLifetime).
type MediaIDRecord struct {
	MediaID   string    `json:"media_id"`
	Type      string    `json:"type"` // image, voice, video, file
	CreatedAt time.Time `json:"created_at"`
}

// ValidAt reports whether the media id can still be used at now, margin
// before WeCom forgets it (a message sent at the edge would fail with 40007).
func (r MediaIDRecord) ValidAt(now time.Time, margin time.Duration) bool {
	return r.MediaID != "" && now.Before(r.CreatedAt.Add(MediaLifetime-margin))
}

// MediaIDKey is the key of an app's media id for an object: <app>.<sha256>.
func MediaIDKey(app, sha string) string { return Token(app) + "." + sha }

// MediaFetchRequest asks the sender to download an inbound message's media.
type MediaFetchRequest struct {
	App     string `json:"app"`
	MediaID string `json:"media_id"`
}

// MediaFetchReply is the sender's answer: the object in BucketMedia, or Error.
type MediaFetchReply struct {
	Object   string `json:"object,omitempty"`
	Filename string `json:"filename,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Error    string `json:"error,omitempty"`
}

// MediaObject describes one object of BucketMedia.
type MediaObject struct {
	SHA256   string `json:"sha256"` // the object's name
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
}

// MediaStore opens BucketMedia, creating it when it does not exist yet.
func (b *Bus) MediaStore(ctx context.Context) (jetstream.ObjectStore, error) {
	st, err := b.js.ObjectStore(ctx, BucketMedia)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bus: object store %s: %w", BucketMedia, err)
	}
	st, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketMedia, Description: "wxhub: media to upload to or fetched from WeChat",
		TTL: MediaTTL, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: create object store %s: %w", BucketMedia, err)
	}
	return st, nil
}

// EnsureKV opens bucket, creating it with cfg when it does not exist yet
// (buckets a component owns and creates lazily, unlike the declared ones).
func (b *Bus) EnsureKV(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := b.js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bus: kv %s: %w", cfg.Bucket, err)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = b.cfg.Replicas
	}
	if cfg.Storage == 0 {
		cfg.Storage = jetstream.FileStorage
	}
	kv, err = b.js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bus: create kv %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// PutMedia stores r's content in BucketMedia under its SHA-256 with filename;
// content already there is not stored again (unless past half its TTL). r is spooled to a temporary file
// to hash it before the upload (media can be tens of MB).
func (b *Bus) PutMedia(ctx context.Context, filename string, r io.Reader) (MediaObject, error) {
	store, err := b.MediaStore(ctx)
	if err != nil {
		return MediaObject{}, err
	}
	tmp, err := os.CreateTemp("", "wxhub-media-*")
	if err != nil {
		return MediaObject{}, fmt.Errorf("bus: put media: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return MediaObject{}, fmt.Errorf("bus: put media: reading %s: %w", filename, err)
	}
	obj := MediaObject{SHA256: hex.EncodeToString(h.Sum(nil)), Filename: filename, Size: n}
	// Stored content is kept as it is, unless it is past half its TTL: then it
	// is stored again, so a reference handed out now lives at least MediaTTL/2.
	if info, err := store.GetInfo(ctx, obj.SHA256); err == nil && !info.Deleted && info.Size == uint64(n) &&
		time.Since(info.ModTime) < MediaTTL/2 {
		return obj, nil
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return MediaObject{}, fmt.Errorf("bus: put media: %w", err)
	}
	_, err = store.Put(ctx, jetstream.ObjectMeta{Name: obj.SHA256, Description: filename,
		Metadata: map[string]string{metaFilename: filename}}, tmp)
	if err != nil {
		return MediaObject{}, fmt.Errorf("bus: put media %s: %w", filename, err)
	}
	return obj, nil
}

// GetMedia opens an object of BucketMedia; the caller closes the reader.
func (b *Bus) GetMedia(ctx context.Context, sha string) (io.ReadCloser, MediaObject, error) {
	store, err := b.MediaStore(ctx)
	if err != nil {
		return nil, MediaObject{}, err
	}
	r, err := store.Get(ctx, sha)
	if err != nil {
		return nil, MediaObject{}, fmt.Errorf("bus: media %s: %w", sha, err)
	}
	info, err := r.Info()
	if err != nil {
		_ = r.Close()
		return nil, MediaObject{}, fmt.Errorf("bus: media %s: %w", sha, err)
	}
	name := info.Metadata[metaFilename]
	if name == "" {
		name = strings.TrimSpace(info.Description)
	}
	return r, MediaObject{SHA256: sha, Filename: name, Size: int64(info.Size)}, nil
}

// BucketFileshare is the KV bucket of the file share connector's lists waiting
// for the user's number: key <instance>.<hex of the user id>, value
// fileshare.Pending (the record carries its own expiry; FileshareTTL only
// clears leftovers). Created by the connector on first use.
const (
	BucketFileshare = "wxhub_fileshare"
	FileshareTTL    = 24 * time.Hour
)
