package router

import (
	"context"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/internal/media"
	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/schemas"
)

// defaultTranscribeTimeout bounds fetching and transcribing one voice message
// when router.transcriber.timeout is not set: the events behind it wait, and
// past the router's ack wait (5 s) a standby router may take the pin over.
const defaultTranscribeTimeout = 4 * time.Second

func newTranscriber(c transcribe.Config) (transcribe.Transcriber, error) {
	if c.Timeout == 0 {
		c.Timeout = defaultTranscribeTimeout
	}
	tr, err := transcribe.New(c)
	if err != nil {
		return nil, &FieldError{"router.transcriber", err.Error()}
	}
	return tr, nil
}

// needsTranscript reports a voice message without a transcript: WeCom's
// never have one, an Official Account's keep WeChat's own when present.
func needsTranscript(d *schemas.EventData) bool {
	return d.MsgType == "voice" && d.MediaID != "" && d.Recognition == "" &&
		(d.Channel == schemas.ChannelWeCom || d.Channel == schemas.ChannelMP)
}

// transcribe sets a voice event's data.recognition from the transcriber,
// within its timeout, and returns the event's bytes with it (the stored
// bytes otherwise). A failure is logged and counted; the event goes on as it came.
func (r *Router) transcribe(ctx context.Context, rs *ruleSet, ev *schemas.Event, data []byte) []byte {
	timeout := rs.cfg.Transcriber.Timeout
	if timeout <= 0 {
		timeout = defaultTranscribeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	text, err := r.transcript(ctx, rs.tr, &ev.Data)
	var out []byte
	if err == nil {
		out, err = withRecognition(data, text)
	}
	r.m.transcribeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		r.m.transcriptions.WithLabelValues("failed").Inc()
		r.log.Warn("voice routed without a transcript", zap.String("event", ev.ID), zap.String("app", ev.Data.App), zap.Error(err))
		return data
	}
	r.m.transcriptions.WithLabelValues("ok").Inc()
	ev.Data.Recognition = text
	return out
}

func (r *Router) transcript(ctx context.Context, tr transcribe.Transcriber, d *schemas.EventData) (string, error) {
	rc, obj, _, err := r.voices.Open(ctx, d.App, d.MediaID)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	text, err := tr.Transcribe(ctx, rc, obj.Filename, d.Format)
	if err == nil && text == "" {
		err = fmt.Errorf("router: the transcriber heard nothing")
	}
	return text, err
}

// withRecognition sets data.recognition in an event's JSON, keeping every
// other field as stored (also those this version does not know).
func withRecognition(event []byte, text string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(event, &top); err != nil {
		return nil, err
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(top["data"], &data); err != nil {
		return nil, err
	}
	data["recognition"], _ = json.Marshal(text)
	var err error
	if top["data"], err = json.Marshal(data); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

// voiceCache is where the router reads voice: the shared inbound media cache,
// fetched by the sender (it holds the tokens).
func voiceCache(r *Router) *media.Inbound {
	return media.NewInbound(r.b, media.SenderFetch(r.b))
}
