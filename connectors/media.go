package connectors

import (
	"context"
	"io"

	"github.com/wxhub/wxhub/bus"
)

// MediaRef is a file in the hub's media store (bus.BucketMedia), ready to be
// sent: the sender uploads it to WeCom (media/upload) when a reply references
// it, and reuses the media id while WeCom keeps it (3 days).
type MediaRef = bus.MediaObject

// PutMedia stores r's content in the media store under its SHA-256 (content
// already stored is not stored again) and returns the reference to put in a
// reply (FileObject). Safe for concurrent use; r is read to its end.
func PutMedia(ctx context.Context, b *bus.Bus, filename string, r io.Reader) (MediaRef, error) {
	return b.PutMedia(ctx, filename, r)
}

// FileObject is a WeCom file message of a stored object: the sender replaces
// the reference with a WeCom media_id before sending.
func FileObject(user string, ref MediaRef) Reply {
	return message(user, "file", map[string]string{bus.MediaObjectField: ref.SHA256})
}
