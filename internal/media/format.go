package media

import (
	"bytes"
	"mime"
	"path"
	"strings"

	"github.com/wxhub/wxhub/schemas"
)

// The one place the hub knows what WeChat's and WeCom's media formats are:
// the MIME type and file extension of each, and what a voice message's audio
// is (codec, rate, channels), so connectors know how to play or convert it.

// voiceFormats maps a voice message's Format (lower case) to its audio.
// WeCom's and the Official Account's voice is AMR-NB (8 kHz mono); WeChat's
// high-definition voice is Speex (16 kHz mono, Ogg container).
var voiceFormats = map[string]schemas.Audio{
	"amr":   {MIMEType: "audio/amr", Extension: ".amr", Codec: "AMR-NB", SampleRate: 8000, Channels: 1},
	"speex": {MIMEType: "audio/ogg; codecs=speex", Extension: ".spx", Codec: "Speex", SampleRate: 16000, Channels: 1},
}

// extensions are the types mime.TypeByExtension may not know on every system.
var extensions = map[string]string{
	".amr": "audio/amr",
	".spx": "audio/ogg; codecs=speex",
	".mp4": "video/mp4",
	".jpg": "image/jpeg",
	".png": "image/png",
}

// VoiceAudio describes the audio of a voice message of format (its Format
// field; empty is AMR, WeCom's only voice format); ok is false for a format
// the hub does not know.
func VoiceAudio(format string) (schemas.Audio, bool) {
	f := strings.ToLower(strings.TrimSpace(format))
	if f == "" {
		f = "amr"
	}
	a, ok := voiceFormats[f]
	return a, ok
}

// Sniff returns the MIME type and extension of content starting with head,
// from the formats WeChat and WeCom use ("" when none matches).
func Sniff(head []byte) (mimeType, ext string) {
	switch {
	case bytes.HasPrefix(head, []byte("#!AMR")):
		return "audio/amr", ".amr"
	case bytes.HasPrefix(head, []byte("OggS")) && bytes.Contains(head[:min(len(head), 64)], []byte("Speex")):
		return "audio/ogg; codecs=speex", ".spx"
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg", ".jpg"
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png", ".png"
	case len(head) >= 8 && string(head[4:8]) == "ftyp":
		return "video/mp4", ".mp4"
	}
	return "", ""
}

// ExtensionOf is the file extension of a MIME type ("" when unknown).
func ExtensionOf(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	for ext, t := range extensions {
		if base, _, _ := mime.ParseMediaType(t); base == mt && (mt != "audio/ogg" || strings.Contains(contentType, "speex")) {
			return ext
		}
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ""
}

// ContentType is the type to serve a medium with: from its name's extension,
// else from its content.
func ContentType(filename string, head []byte) string {
	ext := strings.ToLower(path.Ext(filename))
	if ct, ok := extensions[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ext != "" && ct != "" {
		return ct
	}
	if ct, _ := Sniff(head); ct != "" {
		return ct
	}
	return httpDetect(head)
}

// Filename is the name to serve a medium under: name when it has an
// extension, else name (or "media") with the extension of its content, or
// of contentType (the type its source named) when the content says nothing.
func Filename(name, contentType string, head []byte) string {
	if name != "" && path.Ext(name) != "" {
		return name
	}
	if name == "" {
		name = "media"
	}
	_, ext := Sniff(head)
	if ext == "" && contentType != "" && !strings.HasPrefix(contentType, "application/octet-stream") {
		ext = ExtensionOf(contentType)
	}
	if ext == "" {
		if ct := httpDetect(head); !strings.HasPrefix(ct, "application/octet-stream") {
			ext = ExtensionOf(ct)
		}
	}
	return name + ext
}
