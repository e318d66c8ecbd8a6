package media

import "testing"

func TestVoiceAudio(t *testing.T) {
	for _, tc := range []struct {
		format, mime, ext string
		rate              int
	}{
		{"amr", "audio/amr", ".amr", 8000},
		{"", "audio/amr", ".amr", 8000},
		{"AMR", "audio/amr", ".amr", 8000},
		{"speex", "audio/ogg; codecs=speex", ".spx", 16000},
	} {
		a, ok := VoiceAudio(tc.format)
		if !ok || a.MIMEType != tc.mime || a.Extension != tc.ext || a.SampleRate != tc.rate || a.Channels != 1 {
			t.Errorf("VoiceAudio(%q) = %+v, %v", tc.format, a, ok)
		}
		if ct := ContentType("v"+a.Extension, nil); ct != tc.mime {
			t.Errorf("ContentType(v%s) = %q, want %q", a.Extension, ct, tc.mime)
		}
		if ext := ExtensionOf(tc.mime); ext != tc.ext {
			t.Errorf("ExtensionOf(%q) = %q, want %q", tc.mime, ext, tc.ext)
		}
	}
	if _, ok := VoiceAudio("mp3"); ok {
		t.Error("mp3 is not a WeChat voice format")
	}
}

func TestFilenameAndContentType(t *testing.T) {
	amr := []byte("#!AMR\n\x3c\x00\x00")
	png := []byte("\x89PNG\r\n\x1a\n0000")
	for _, tc := range []struct {
		name string
		head []byte
		want string
		ct   string
	}{
		{"voice", amr, "voice.amr", "audio/amr"},
		{"", amr, "media.amr", "audio/amr"},
		{"3abc", png, "3abc.png", "image/png"},
		{"report.pdf", []byte("%PDF-1.4"), "report.pdf", "application/pdf"},
		{"blob", []byte{0, 1, 2, 3, 4, 5}, "blob", "application/octet-stream"},
		{"clip", []byte("\x00\x00\x00\x18ftypmp42"), "clip.mp4", "video/mp4"},
	} {
		if got := Filename(tc.name, "", tc.head); got != tc.want {
			t.Errorf("Filename(%q) = %q, want %q", tc.name, got, tc.want)
		}
		if got := ContentType(tc.name, tc.head); got != tc.ct {
			t.Errorf("ContentType(%q) = %q, want %q", tc.name, got, tc.ct)
		}
	}
}
