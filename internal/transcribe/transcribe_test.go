package transcribe_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The simulator's stand-in service answers the text encoded in the voice it
// played, and refuses other audio; the client reports the service's message.
func TestOpenAIAgainstSimulator(t *testing.T) {
	cfg := sim.DemoConfig()
	cfg.GatewayURL = ""
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	tr, err := transcribe.New(transcribe.Config{BaseURL: s.URL(), Model: "whisper-1"})
	if err != nil || tr == nil {
		t.Fatalf("New = %v, %v", tr, err)
	}
	id := s.AddMedia("helpdesk", "voice", "voice.amr", []byte("#!AMR\n销售周报"))
	m, _ := s.MediaByID(id)
	tests := []struct {
		name    string
		given   []byte
		want    string
		wantErr string
	}{
		{name: "played voice", given: m.Data, want: "销售周报"},
		{name: "other audio", given: []byte("RIFF....WAVEfmt "), wantErr: "only the voice messages it played"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tr.Transcribe(context.Background(), bytes.NewReader(tc.given), "", "amr")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Transcribe = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	if tr, err := transcribe.New(transcribe.Config{}); tr != nil || err != nil {
		t.Fatalf("empty config = %v, %v; want no transcriber", tr, err)
	}
	if _, err := transcribe.New(transcribe.Config{BaseURL: "ftp://x"}); err == nil || !strings.Contains(err.Error(), "base_url") {
		t.Fatalf("bad base_url: %v", err)
	}
}
