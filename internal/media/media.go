// Package media is the hub's media handling shared by the gateway and the
// router: WeCom's limits for temporary media, hub media ids (content in the
// object store bus.BucketMedia, named by SHA-256), fetching a URL into the
// store, and the cache of inbound media (an app's WeCom media id mapped to the
// stored content, so a second read does not call WeCom).
package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// MinSize: WeCom refuses media of MinSize bytes or less.
const MinSize = 5

// Limits are WeCom's size limits of temporary media, by type.
var Limits = map[string]int64{
	"image": 10 << 20,
	"voice": 2 << 20,
	"video": 10 << 20,
	"file":  20 << 20,
}

// MaxSize is the largest medium of any type.
const MaxSize = 20 << 20

// formats: what WeCom accepts per type (file: anything).
var formats = map[string]string{"image": "JPG or PNG", "voice": "AMR", "video": "MP4"}

// LimitError is a medium WeCom would refuse; TooLarge distinguishes 413 from 400.
type LimitError struct {
	Type     string
	TooLarge bool
	Msg      string
}

func (e *LimitError) Error() string { return e.Msg }

// Check tests a medium of typ with size bytes starting with head against
// WeCom's limits; the error names the limit.
func Check(typ string, size int64, head []byte) error {
	limit, ok := Limits[typ]
	switch {
	case !ok:
		return &LimitError{Type: typ, Msg: fmt.Sprintf("type %q is not one of image, voice, video, file", typ)}
	case size <= MinSize:
		return &LimitError{Type: typ, Msg: fmt.Sprintf("%s of %d bytes: WeCom accepts media larger than %d bytes", typ, size, MinSize)}
	case size > limit:
		return &LimitError{Type: typ, TooLarge: true, Msg: fmt.Sprintf("%s of %d bytes: WeCom's limit for %s is %d MB", typ, size, typ, limit>>20)}
	}
	if head != nil && !formatOK(typ, head) {
		return &LimitError{Type: typ, Msg: fmt.Sprintf("%s must be %s (WeCom's rule for %s)", typ, formats[typ], typ)}
	}
	return nil
}

func formatOK(typ string, head []byte) bool {
	switch typ {
	case "image":
		return bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}) || bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n"))
	case "voice":
		return bytes.HasPrefix(head, []byte("#!AMR"))
	case "video":
		return len(head) >= 8 && string(head[4:8]) == "ftyp"
	}
	return true
}

// HubIDPrefix starts every hub media id; WeCom's own ids never do.
const HubIDPrefix = "wxhm_"

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

// HubID is the hub media id of stored content: stable for the content.
func HubID(sha string) string { return HubIDPrefix + sha }

// ParseHubID returns the content hash of a hub media id; ok is false for any
// other id (a WeCom media id).
func ParseHubID(id string) (sha string, ok bool) {
	sha, ok = strings.CutPrefix(id, HubIDPrefix)
	return sha, ok && hexSHA.MatchString(sha)
}

// Stored describes a medium in the hub's store, as the media API answers it.
type Stored = schemas.MediaStored

// Put checks data against typ's limits and stores it; content already stored
// keeps its first creation time.
func Put(ctx context.Context, b *bus.Bus, typ, filename string, data []byte) (Stored, error) {
	if err := Check(typ, int64(len(data)), data); err != nil {
		return Stored{}, err
	}
	if filename == "" {
		filename = typ + extension(typ, data)
	}
	obj, err := b.PutMedia(ctx, filename, bytes.NewReader(data))
	if err != nil {
		return Stored{}, err
	}
	st, err := Stat(ctx, b, obj.SHA256)
	if err != nil {
		return Stored{}, err
	}
	st.Type = typ
	return st, nil
}

// ErrNotFound: no such medium in the store (never stored, or expired).
var ErrNotFound = errors.New("media: not in the hub's store (expired or never stored)")

// Stat describes a stored object (Type left empty: the store keeps content only).
func Stat(ctx context.Context, b *bus.Bus, sha string) (Stored, error) {
	store, err := b.MediaStore(ctx)
	if err != nil {
		return Stored{}, err
	}
	info, err := store.GetInfo(ctx, sha)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("media: %s: %w", sha, err)
	}
	name := info.Metadata["filename"]
	if name == "" {
		name = info.Description
	}
	created := info.ModTime.UTC()
	return Stored{MediaID: HubID(sha), Size: int64(info.Size), SHA256: sha, Filename: name, CreatedAt: created,
		ExpiresAt: created.Add(bus.MediaTTL)}, nil
}

func extension(typ string, data []byte) string {
	if _, ext := Sniff(data); ext != "" {
		return ext
	}
	switch typ {
	case "voice":
		return ".amr"
	case "video":
		return ".mp4"
	case "image":
		return ".jpg"
	}
	return ""
}

func httpDetect(head []byte) string { return http.DetectContentType(head) }

// URLFetcher downloads media a client names by URL (http and https only),
// bounded by a timeout and by the type's size limit.
type URLFetcher struct {
	http *resty.Client
}

// NewURLFetcher returns a fetcher whose every download ends within timeout.
func NewURLFetcher(timeout time.Duration) *URLFetcher {
	return &URLFetcher{http: resty.New().SetTimeout(timeout).SetRetryCount(0).SetDisableWarn(true).
		SetRedirectPolicy(resty.FlexibleRedirectPolicy(5))}
}

// FetchError is a URL that could not be fetched (the client's fault: 400).
type FetchError struct{ Msg string }

func (e *FetchError) Error() string { return e.Msg }

// Fetch downloads rawURL as a medium of typ: its content (checked against the
// limits by Put) and a filename from Content-Disposition or the URL's path.
func (f *URLFetcher) Fetch(ctx context.Context, rawURL, typ string) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", &FetchError{Msg: fmt.Sprintf("url %q: only absolute http and https URLs are fetched", rawURL)}
	}
	limit, ok := Limits[typ]
	if !ok {
		return nil, "", &LimitError{Type: typ, Msg: fmt.Sprintf("type %q is not one of image, voice, video, file", typ)}
	}
	resp, err := f.http.R().SetContext(ctx).SetDoNotParseResponse(true).Get(u.String())
	if err != nil {
		return nil, "", &FetchError{Msg: fmt.Sprintf("url %s: %v", u.Redacted(), err)}
	}
	body := resp.RawBody()
	defer body.Close()
	if resp.StatusCode() != http.StatusOK {
		return nil, "", &FetchError{Msg: fmt.Sprintf("url %s answered %s", u.Redacted(), resp.Status())}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(nil, body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "", &LimitError{Type: typ, TooLarge: true, Msg: fmt.Sprintf("%s at %s is larger than WeCom's limit for %s, %d MB", typ, u.Redacted(), typ, limit>>20)}
		}
		return nil, "", &FetchError{Msg: fmt.Sprintf("url %s: reading: %v", u.Redacted(), err)}
	}
	name := ""
	if _, params, err := mime.ParseMediaType(resp.Header().Get("Content-Disposition")); err == nil {
		name = params["filename"]
	}
	if name == "" {
		if base := path.Base(u.Path); base != "/" && base != "." {
			name = base
		}
	}
	return buf.Bytes(), name, nil
}
