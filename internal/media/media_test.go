package media_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/internal/media"
)

func TestCheck(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nxx")
	tests := []struct {
		name     string
		typ      string
		size     int64
		head     []byte
		tooLarge bool
		wantMsg  string
	}{
		{"png", "image", 10 << 20, png, false, ""},
		{"jpg", "image", 100, []byte{0xFF, 0xD8, 0xFF, 0xE0}, false, ""},
		{"gif", "image", 100, []byte("GIF89a"), false, "JPG or PNG"},
		{"image over 10 MB", "image", 10<<20 + 1, png, true, "10 MB"},
		{"five bytes", "file", 5, nil, false, "larger than 5 bytes"},
		{"file at 20 MB", "file", 20 << 20, nil, false, ""},
		{"file over 20 MB", "file", 20<<20 + 1, nil, true, "20 MB"},
		{"voice not AMR", "voice", 100, []byte("ID3"), false, "AMR"},
		{"voice over 2 MB", "voice", 2<<20 + 1, []byte("#!AMR\n"), true, "2 MB"},
		{"video mp4", "video", 100, []byte("\x00\x00\x00\x18ftypmp42"), false, ""},
		{"video avi", "video", 100, []byte("RIFF....AVI "), false, "MP4"},
		{"unknown type", "gif", 100, nil, false, "not one of"},
	}
	for _, tt := range tests {
		err := media.Check(tt.typ, tt.size, tt.head)
		var le *media.LimitError
		switch {
		case tt.wantMsg == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantMsg != "" && (!errors.As(err, &le) || le.TooLarge != tt.tooLarge || !strings.Contains(le.Msg, tt.wantMsg)):
			t.Errorf("%s: %v, want a limit error (too large %v) naming %q", tt.name, err, tt.tooLarge, tt.wantMsg)
		}
	}
}

func TestHubID(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	if got, ok := media.ParseHubID(media.HubID(sha)); !ok || got != sha {
		t.Fatalf("round trip: %q %v", got, ok)
	}
	for _, id := range []string{"3a1b2c", "wxhm_" + sha[:63], "wxhm_" + strings.ToUpper(sha), sha} {
		if _, ok := media.ParseHubID(id); ok {
			t.Errorf("%q taken for a hub id", id)
		}
	}
}
