package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/schemas"
)

// SayRequest is the body of POST /sim/say. App "" means the first app.
type SayRequest struct {
	App  string `json:"app,omitempty"`
	User string `json:"user"`
	Text string `json:"text"`
}

// EventRequest is the body of POST /sim/event: the event's name and its fields
// as in schemas.EventData (event_key, scan_type, scan_result, task_id, ...).
type EventRequest struct {
	App  string `json:"app,omitempty"`
	User string `json:"user"`
	schemas.EventData
}

// VoiceRequest is the body of POST /sim/voice.
type VoiceRequest struct {
	App         string `json:"app,omitempty"`
	User        string `json:"user"`
	MediaID     string `json:"media_id,omitempty"`
	Recognition string `json:"recognition,omitempty"`
}

// FailRequest is the body of POST /sim/fail (see Server.FailNextOn).
type FailRequest struct {
	API     string `json:"api,omitempty"`
	N       int    `json:"n"`
	ErrCode int    `json:"errcode"`
}

// DeliveryResult is what /sim/say, /sim/event, /sim/voice and /sim/verify answer:
// the delivery and, if it failed, why (HTTP 502).
type DeliveryResult struct {
	Delivery *Delivery `json:"delivery,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// SentFilter selects messages for /sim/sent: by recipient (case-insensitive), by
// app, and newer than a sequence number or a time.
type SentFilter struct {
	User     string
	App      string
	SinceSeq int64
	Since    time.Time
}

func (f SentFilter) match(m SentMessage) bool {
	return (f.User == "" || strings.EqualFold(f.User, m.User)) && (f.App == "" || f.App == m.App) &&
		m.Seq > f.SinceSeq && (f.Since.IsZero() || m.Time.After(f.Since))
}

func (f SentFilter) query() map[string]string {
	q := map[string]string{}
	if f.User != "" {
		q["user"] = f.User
	}
	if f.App != "" {
		q["app"] = f.App
	}
	if f.SinceSeq > 0 {
		q["since"] = strconv.FormatInt(f.SinceSeq, 10)
	} else if !f.Since.IsZero() {
		q["since"] = f.Since.Format(time.RFC3339Nano)
	}
	return q
}

func parseFilter(r *http.Request) (SentFilter, error) {
	q := r.URL.Query()
	f := SentFilter{User: q.Get("user"), App: q.Get("app")}
	if v := q.Get("since"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			f.SinceSeq = n
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			f.Since = t
		} else {
			return f, fmt.Errorf("since: want a sequence number or an RFC 3339 time, got %q", v)
		}
	}
	return f, nil
}

func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /sim/sent", func(w http.ResponseWriter, r *http.Request) {
		f, err := parseFilter(r)
		if err != nil {
			jsonError(w, http.StatusBadRequest, err)
			return
		}
		out := []SentMessage{}
		for _, x := range s.Sent() {
			if f.match(x) {
				out = append(out, x)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	})
	m.HandleFunc("GET /sim/dropped", func(w http.ResponseWriter, r *http.Request) {
		f, err := parseFilter(r)
		if err != nil {
			jsonError(w, http.StatusBadRequest, err)
			return
		}
		out := []DroppedMessage{}
		for _, x := range s.Dropped() {
			if f.match(x.SentMessage) {
				out = append(out, x)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	})
	m.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	m.HandleFunc("POST /sim/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	m.HandleFunc("POST /sim/expire-tokens", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireTokens()
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	m.HandleFunc("POST /sim/fail", func(w http.ResponseWriter, r *http.Request) {
		var req FailRequest
		if !readBody(w, r, &req) {
			return
		}
		if req.N <= 0 {
			jsonError(w, http.StatusBadRequest, errors.New("n: must be positive"))
			return
		}
		s.FailNextOn(req.API, req.N, req.ErrCode)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	m.HandleFunc("POST /sim/oauth/code", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User string `json:"user"`
		}
		if !readBody(w, r, &req) {
			return
		}
		code, err := s.IssueOAuthCode(req.User)
		if err != nil {
			jsonError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"code": code})
	})
	m.HandleFunc("GET /sim/media/{id}", func(w http.ResponseWriter, r *http.Request) {
		md, ok := s.MediaByID(r.PathValue("id"))
		if !ok {
			jsonError(w, http.StatusNotFound, fmt.Errorf("no media %q", r.PathValue("id")))
			return
		}
		w.Header().Set("Content-Type", md.ContentType)
		_, _ = w.Write(md.Data)
	})
	m.HandleFunc("POST /sim/say", func(w http.ResponseWriter, r *http.Request) {
		var req SayRequest
		if readBody(w, r, &req) {
			s.writeDelivery(w, func(ctx context.Context) (*Delivery, error) { return s.Say(ctx, req.App, req.User, req.Text) }, r)
		}
	})
	m.HandleFunc("POST /sim/event", func(w http.ResponseWriter, r *http.Request) {
		var req EventRequest
		if readBody(w, r, &req) {
			s.writeDelivery(w, func(ctx context.Context) (*Delivery, error) {
				return s.SendEvent(ctx, req.App, req.User, req.EventData)
			}, r)
		}
	})
	m.HandleFunc("POST /sim/voice", func(w http.ResponseWriter, r *http.Request) {
		var req VoiceRequest
		if readBody(w, r, &req) {
			s.writeDelivery(w, func(ctx context.Context) (*Delivery, error) {
				return s.Voice(ctx, req.App, req.User, req.MediaID, req.Recognition)
			}, r)
		}
	})
	m.HandleFunc("POST /sim/verify", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			App string `json:"app"`
		}
		if readBody(w, r, &req) {
			s.writeDelivery(w, func(ctx context.Context) (*Delivery, error) { return s.VerifyURL(ctx, req.App) }, r)
		}
	})
}

func (s *Server) writeDelivery(w http.ResponseWriter, play func(context.Context) (*Delivery, error), r *http.Request) {
	d, err := play(r.Context())
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, DeliveryResult{Delivery: d})
	case errors.Is(err, ErrUnknownApp), errors.Is(err, ErrUnknownUser), errors.Is(err, ErrNoCallback), d == nil:
		writeJSON(w, http.StatusBadRequest, DeliveryResult{Error: err.Error()})
	default:
		writeJSON(w, http.StatusBadGateway, DeliveryResult{Delivery: d, Error: err.Error()})
	}
}

func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		jsonError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// Remote talks to a running simulator's /sim API (what `wxhub sim say`, `sim
// event` and `sim sent` use). Safe for concurrent use.
type Remote struct {
	c *resty.Client
}

// ErrRemote wraps every error answer of a remote simulator.
var ErrRemote = errors.New("sim: remote simulator error")

// NewRemote returns a client for the simulator at baseURL (e.g. http://127.0.0.1:8090).
func NewRemote(baseURL string) *Remote {
	return &Remote{c: resty.New().SetBaseURL(strings.TrimRight(baseURL, "/")).SetTimeout(60 * time.Second)}
}

func (r *Remote) do(ctx context.Context, method, path string, body, out any, query map[string]string) error {
	var errBody struct {
		Error string `json:"error"`
	}
	req := r.c.R().SetContext(ctx).SetQueryParams(query).SetError(&errBody)
	if body != nil {
		req.SetBody(body)
	}
	if out != nil {
		req.SetResult(out)
	}
	resp, err := req.Execute(method, path)
	if err != nil {
		return fmt.Errorf("sim: %s %s: %w", method, path, err)
	}
	if resp.IsError() {
		// /sim/say answers 502 with the failed delivery in the body.
		if dr, ok := out.(*DeliveryResult); ok && resp.StatusCode() == http.StatusBadGateway {
			_ = json.Unmarshal(resp.Body(), dr)
			return fmt.Errorf("%w: %s", ErrRemote, dr.Error)
		}
		msg := errBody.Error
		if msg == "" {
			msg = strings.TrimSpace(string(resp.Body()))
		}
		return fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrRemote, method, path, resp.StatusCode(), msg)
	}
	return nil
}

func (r *Remote) play(ctx context.Context, path string, body any) (*Delivery, error) {
	var out DeliveryResult
	err := r.do(ctx, http.MethodPost, path, body, &out, nil)
	return out.Delivery, err
}

// Say asks the simulator to play user saying text to app ("" = the first app).
func (r *Remote) Say(ctx context.Context, app, user, text string) (*Delivery, error) {
	return r.play(ctx, "/sim/say", SayRequest{App: app, User: user, Text: text})
}

// Event asks the simulator to play an event (ev.Event: click, scancode_waitmsg, ...).
func (r *Remote) Event(ctx context.Context, app, user string, ev schemas.EventData) (*Delivery, error) {
	return r.play(ctx, "/sim/event", EventRequest{App: app, User: user, EventData: ev})
}

// Voice asks the simulator to play a voice message.
func (r *Remote) Voice(ctx context.Context, app, user, mediaID, recognition string) (*Delivery, error) {
	return r.play(ctx, "/sim/voice", VoiceRequest{App: app, User: user, MediaID: mediaID, Recognition: recognition})
}

// VerifyURL asks the simulator to play the callback URL verification for app.
func (r *Remote) VerifyURL(ctx context.Context, app string) (*Delivery, error) {
	return r.play(ctx, "/sim/verify", map[string]string{"app": app})
}

// Sent lists delivered messages matching f.
func (r *Remote) Sent(ctx context.Context, f SentFilter) ([]SentMessage, error) {
	var out struct {
		Messages []SentMessage `json:"messages"`
	}
	err := r.do(ctx, http.MethodGet, "/sim/sent", nil, &out, f.query())
	return out.Messages, err
}

// Dropped lists accepted-but-dropped messages matching f.
func (r *Remote) Dropped(ctx context.Context, f SentFilter) ([]DroppedMessage, error) {
	var out struct {
		Messages []DroppedMessage `json:"messages"`
	}
	err := r.do(ctx, http.MethodGet, "/sim/dropped", nil, &out, f.query())
	return out.Messages, err
}

// Stats returns the simulator's counters.
func (r *Remote) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	err := r.do(ctx, http.MethodGet, "/sim/stats", nil, &out, nil)
	return out, err
}

// Reset clears the simulator's records and counters.
func (r *Remote) Reset(ctx context.Context) error {
	return r.do(ctx, http.MethodPost, "/sim/reset", nil, nil, nil)
}

// FailNext makes the next n calls of api ("" = any but gettoken) fail with errcode.
func (r *Remote) FailNext(ctx context.Context, api string, n, errcode int) error {
	return r.do(ctx, http.MethodPost, "/sim/fail", FailRequest{API: api, N: n, ErrCode: errcode}, nil, nil)
}

// IssueOAuthCode returns an OAuth code for user (see Server.IssueOAuthCode).
func (r *Remote) IssueOAuthCode(ctx context.Context, user string) (string, error) {
	var out struct {
		Code string `json:"code"`
	}
	err := r.do(ctx, http.MethodPost, "/sim/oauth/code", map[string]string{"user": user}, &out, nil)
	return out.Code, err
}
