package router

import (
	"strings"
	"testing"

	"github.com/wxhub/wxhub/internal/transcribe"
)

// The transcript joins the stored event; fields this version does not know stay.
func TestWithRecognitionKeepsUnknownFields(t *testing.T) {
	in := []byte(`{"id":"e1","future":{"x":1},"data":{"msg_type":"voice","media_id":"m","later":"kept"}}`)
	out, err := withRecognition(in, "找 销售周报")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"future":{"x":1}`, `"later":"kept"`, `"recognition":"找 销售周报"`, `"media_id":"m"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
}

func TestTranscriberConfigNamesTheKey(t *testing.T) {
	err := Config{Transcriber: transcribe.Config{BaseURL: "ftp://stt"}}.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "router.transcriber: ") || !strings.Contains(err.Error(), "base_url") {
		t.Fatalf("got %v", err)
	}
}
