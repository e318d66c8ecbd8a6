// Package transcribe is the hub's speech-to-text hook: a Transcriber turns a
// voice message's audio into text (WeCom voice messages carry no transcript).
// OpenAI implements it for any OpenAI-compatible service (POST
// {base}/v1/audio/transcriptions); the WeCom simulator serves a stand-in.
package transcribe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
)

// Transcriber turns audio into text. filename names the audio for the service
// (its extension often selects the decoder); format is WeChat's Format (amr,
// speex), possibly empty. Safe for concurrent use.
type Transcriber interface {
	Transcribe(ctx context.Context, audio io.Reader, filename, format string) (string, error)
}

// Func adapts a function to Transcriber.
type Func func(ctx context.Context, audio io.Reader, filename, format string) (string, error)

// Transcribe calls f.
func (f Func) Transcribe(ctx context.Context, audio io.Reader, filename, format string) (string, error) {
	return f(ctx, audio, filename, format)
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("transcribe: invalid config")

// Config is the speech-to-text section (e.g. under a connector's `transcriber:`).
type Config struct {
	// BaseURL of the OpenAI-compatible service, without /v1 (e.g.
	// https://api.openai.com, or the simulator's address). Empty: no transcriber.
	BaseURL string `yaml:"base_url"`
	// APIKey is sent as "Authorization: Bearer <key>"; empty sends none.
	APIKey string `yaml:"api_key"`
	// Model is the form field "model". Default "whisper-1".
	Model string `yaml:"model"`
	// Language, when set, is the form field "language" (ISO-639-1, e.g. "zh").
	Language string `yaml:"language"`
	// Timeout of one call. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
}

// Enabled reports whether a service is configured.
func (c Config) Enabled() bool { return c.BaseURL != "" }

// Validate names the first bad key.
func (c Config) Validate() error {
	switch {
	case c.BaseURL != "" && !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://"):
		return fmt.Errorf("%w: base_url: %q is not an http(s) URL", ErrConfig, c.BaseURL)
	case c.Timeout < 0:
		return fmt.Errorf("%w: timeout: must not be negative", ErrConfig)
	}
	return nil
}

// OpenAI calls an OpenAI-compatible /v1/audio/transcriptions endpoint.
type OpenAI struct {
	cfg  Config
	http *resty.Client
}

// New returns the OpenAI-compatible transcriber of cfg, or nil (an untyped
// nil Transcriber) when cfg has no base_url.
func New(cfg Config) (Transcriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	if cfg.Model == "" {
		cfg.Model = "whisper-1"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	c := resty.New().SetBaseURL(strings.TrimRight(cfg.BaseURL, "/")).SetTimeout(cfg.Timeout).
		SetRetryCount(0).SetDisableWarn(true)
	if cfg.APIKey != "" {
		c.SetAuthToken(cfg.APIKey)
	}
	return &OpenAI{cfg: cfg, http: c}, nil
}

type answer struct {
	Text  string `json:"text"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Transcribe posts the audio (multipart "file", "model", "response_format"
// json) and returns the text, trimmed.
func (o *OpenAI) Transcribe(ctx context.Context, audio io.Reader, filename, format string) (string, error) {
	if filename == "" {
		filename = "voice." + cmpOr(format, "amr")
	}
	form := map[string]string{"model": o.cfg.Model, "response_format": "json"}
	if o.cfg.Language != "" {
		form["language"] = o.cfg.Language
	}
	var a answer
	resp, err := o.http.R().SetContext(ctx).SetFileReader("file", filename, audio).
		SetFormData(form).SetResult(&a).SetError(&a).Post("/v1/audio/transcriptions")
	if err != nil {
		return "", fmt.Errorf("transcribe: %w", err)
	}
	if resp.IsError() {
		msg := resp.Status()
		if a.Error != nil && a.Error.Message != "" {
			msg += ": " + a.Error.Message
		}
		return "", fmt.Errorf("transcribe: %s", msg)
	}
	return strings.TrimSpace(a.Text), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
