package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/media"
	"github.com/wxhub/wxhub/schemas"
)

// MediaRef is a file in the hub's media store (bus.BucketMedia), ready to be
// sent: the sender uploads it to WeCom (media/upload) when a reply references
// it, and reuses the media id while WeCom keeps it (3 days).
type MediaRef = bus.MediaObject

// PutMedia stores r's content in the media store under its SHA-256 (content
// already stored is not stored again) and returns the reference to put in a
// reply (FileObject, ImageObject, VoiceObject, VideoObject). Safe for
// concurrent use; r is read to its end. WeCom's limits apply when it is sent
// (image 10 MB JPG/PNG, voice 2 MB AMR, video 10 MB MP4, file 20 MB).
func PutMedia(ctx context.Context, b *bus.Bus, filename string, r io.Reader) (MediaRef, error) {
	return b.PutMedia(ctx, filename, r)
}

// FileObject is a WeCom file message of a stored object: the sender replaces
// the reference with a WeCom media_id before sending.
func FileObject(user string, ref MediaRef) Reply { return mediaObject(user, "file", ref) }

// ImageObject is a WeCom image message of a stored JPG or PNG.
func ImageObject(user string, ref MediaRef) Reply { return mediaObject(user, "image", ref) }

// VoiceObject is a WeCom voice message of a stored AMR file.
func VoiceObject(user string, ref MediaRef) Reply { return mediaObject(user, "voice", ref) }

// VideoObject is a WeCom video message of a stored MP4; title and
// description may be empty.
func VideoObject(user string, ref MediaRef, title, description string) Reply {
	v := map[string]string{bus.MediaObjectField: ref.SHA256}
	if title != "" {
		v["title"] = title
	}
	if description != "" {
		v["description"] = description
	}
	return message(user, "video", v)
}

func mediaObject(user, msgtype string, ref MediaRef) Reply {
	return message(user, msgtype, map[string]string{bus.MediaObjectField: ref.SHA256})
}

// ErrNoMedia: the event carries no medium the hub can fetch (not a WeCom
// or Official Account image, voice, video or file message).
var ErrNoMedia = errors.New("connectors: the event has no WeCom or Official Account medium")

// OpenMedia opens the medium of an inbound WeCom image, voice, video or file
// message, or an Official Account's image, voice or video: from the hub's media store when it was fetched before (by this or
// another connector, the router or the hub URL in data.media_url), else
// downloaded from WeCom by the sender first. The caller closes the reader.
// Connectors outside the hub read data.media_url with an API key instead.
func OpenMedia(ctx context.Context, b *bus.Bus, ev *schemas.Event) (io.ReadCloser, MediaRef, error) {
	d := ev.Data
	if (d.Channel != schemas.ChannelWeCom && d.Channel != schemas.ChannelMP) || d.MediaID == "" {
		return nil, MediaRef{}, fmt.Errorf("%w (channel %q, msg_type %q)", ErrNoMedia, d.Channel, d.MsgType)
	}
	rc, ref, _, err := media.NewInbound(b, media.SenderFetch(b)).Open(ctx, d.App, d.MediaID)
	return rc, ref, err
}
