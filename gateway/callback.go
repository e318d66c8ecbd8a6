package gateway

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/wecom"
)

// Callback rejections. Each maps to a 4xx: WeChat retries on anything but 200,
// and a forged or malformed request must never look like a server fault.
var (
	errUnknownApp = errors.New("no such app")
	errStale      = errors.New("timestamp outside the accepted window")
	errTooLarge   = errors.New("body too large")
	errMissing    = errors.New("missing query parameter")
)

func (g *Gateway) callback(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := g.now()
		app := r.PathValue("app")
		ch := g.channels[kind+"/"+app]
		var eventType string
		var err error
		if ch == nil {
			err = errUnknownApp
		} else if r.Method == http.MethodGet {
			eventType = "verify"
			err = g.verifyURL(w, r, ch)
		} else {
			eventType, err = g.receive(w, r, ch)
		}
		result := "ok"
		if err != nil {
			status := callbackStatus(err)
			result = strconv.Itoa(status)
			// Warn, not error: bad input is the caller's fault and must not page anyone.
			g.log.Warn("callback rejected", zap.String("channel", kind), zap.String("app", app),
				zap.Int("status", status), zap.Error(err), zap.String("remote", r.RemoteAddr))
			http.Error(w, http.StatusText(status)+": "+publicReason(err), status)
		}
		if eventType == "" {
			eventType = "unknown"
		}
		g.metrics.callbacks.WithLabelValues(kind, metricApp(ch, app), eventType, result).Inc()
		g.metrics.callbackSeconds.WithLabelValues(kind).Observe(g.now().Sub(start).Seconds())
	}
}

func metricApp(ch *channel, app string) string {
	if ch == nil {
		return "unknown" // never a label per attacker-chosen path
	}
	return app
}

func callbackStatus(err error) int {
	var mb *http.MaxBytesError
	switch {
	case errors.Is(err, errUnknownApp):
		return http.StatusNotFound
	case errors.As(err, &mb), errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, wecom.ErrSignature):
		return http.StatusUnauthorized
	case errors.Is(err, wecom.ErrReceiveID):
		return http.StatusForbidden
	case errors.Is(err, errPublish):
		return http.StatusServiceUnavailable // our fault: WeChat's retry will find us back
	default:
		return http.StatusBadRequest
	}
}

// publicReason is the short reason sent back: which check failed, no internals.
func publicReason(err error) string {
	for _, e := range []error{errUnknownApp, errStale, errMissing, wecom.ErrSignature, wecom.ErrReceiveID,
		wecom.ErrBase64, wecom.ErrPadding, wecom.ErrXML, wecom.ErrLength, errPublish} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return errTooLarge.Error()
	}
	return "bad request"
}

func (g *Gateway) checkTimestamp(ts string) error {
	if ts == "" {
		return errMissing
	}
	if g.cfg.TimestampWindow < 0 {
		return nil
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errStale
	}
	d := g.now().Sub(time.Unix(sec, 0))
	if d < 0 {
		d = -d
	}
	if d > g.cfg.TimestampWindow {
		return errStale
	}
	return nil
}

// verifyURL answers WeChat's URL check (GET) within 1 s: WeCom's decrypted
// echostr, or an Official Account's plain echostr as it came.
func (g *Gateway) verifyURL(w http.ResponseWriter, r *http.Request, ch *channel) error {
	q := r.URL.Query()
	if q.Get("echostr") == "" || q.Get("nonce") == "" {
		return errMissing
	}
	if err := g.checkTimestamp(q.Get("timestamp")); err != nil {
		return err
	}
	var echo []byte
	// An Official Account's check is the same in plain, compatible and safe
	// mode: signature over token, timestamp, nonce and a plain echostr. Only
	// WeCom encrypts the echostr (with msg_signature).
	if q.Get("msg_signature") == "" && (ch.plainText || ch.kind == schemas.ChannelMP) {
		if err := plainSignatureOK(ch.token, q.Get("signature"), q.Get("timestamp"), q.Get("nonce")); err != nil {
			return err
		}
		echo = []byte(q.Get("echostr"))
	} else {
		if ch.crypter == nil {
			return errMissing
		}
		var err error
		echo, err = ch.crypter.VerifyURL(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
		if err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(echo)
	return nil
}

// plainSignatureOK checks an Official Account's plain-text-mode signature:
// SHA1 of the sorted token, timestamp and nonce.
func plainSignatureOK(token, signature, timestamp, nonce string) error {
	parts := []string{token, timestamp, nonce}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(signature)) != 1 {
		return wecom.ErrSignature
	}
	return nil
}

// receive handles a message or event POST: verify, decrypt, normalize, publish,
// and answer 200 only once JetStream has the event.
func (g *Gateway) receive(w http.ResponseWriter, r *http.Request, ch *channel) (eventType string, err error) {
	started := time.Now() // real time: the passive-reply budget runs against WeChat's 5 s
	ctx, end := tracing.StartSpan(r.Context(), "gateway.callback", r.Header.Get(bus.HeaderTraceParent))
	defer func() { end(err) }()
	q := r.URL.Query()
	if err := g.checkTimestamp(q.Get("timestamp")); err != nil {
		return "", err
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if n := r.ContentLength; n > 0 && n <= g.cfg.MaxBodyBytes {
		buf.Grow(int(n) + 1) // +1: ReadFrom wants room to see EOF
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)); err != nil {
		return "", err
	}
	body := buf.Bytes() // only until the handler returns: plain and data copy what they keep
	var plain []byte
	if q.Get("msg_signature") == "" && ch.plainText {
		if err := plainSignatureOK(ch.token, q.Get("signature"), q.Get("timestamp"), q.Get("nonce")); err != nil {
			return "", err
		}
		plain = body
	} else {
		if ch.crypter == nil || q.Get("msg_signature") == "" {
			return "", wecom.ErrSignature
		}
		plain, err = ch.crypter.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
		if err != nil {
			return "", err
		}
	}
	data, err := wecom.ParseInbound(plain)
	if err != nil {
		return "", err
	}
	data.Channel = ch.kind
	data.App = ch.name
	data.Corp = ch.corp
	data.MediaURL = g.mediaURL(ch, data) // media.go
	data.Audio = voiceAudio(data)
	eventType = wecom.EventType(data)
	tp := bus.TraceParentFrom(ctx)
	ev := schemas.Event{
		SpecVersion:     schemas.SpecVersion,
		ID:              ch.kind + "-" + ch.name + "-" + wecom.DedupKey(data, plain),
		Source:          ch.kind + "/" + ch.name,
		Type:            "wxhub.in." + eventType,
		Time:            g.now().UTC(),
		DataContentType: "application/json",
		TraceParent:     tp,
		Data:            data,
	}
	// Official Accounts: ready to take a passive reply before the event can be routed (mp_passive.go).
	pw := g.startPassive(ctx, ch, data, ev.ID, started)
	if err := g.publish(ctx, bus.InSubject(ch.kind, ch.name, eventType), ev.ID, schemas.SchemaEvent, ev); err != nil {
		if pw != nil && pw.replay == nil {
			pw.abandon(context.WithoutCancel(ctx)) // WeChat's retry waits afresh
		}
		return eventType, err
	}
	g.recordInteraction(ctx, ch, data, eventType) // Official Accounts: the 48-hour window (mp_window.go)
	g.log.Debug("callback accepted", zap.String("id", ev.ID), zap.String("type", ev.Type), zap.String("app", ch.name))
	if ch.kind == schemas.ChannelMP {
		var reply []byte
		if pw != nil {
			reply = pw.await(ctx, g, ch, data, ev.ID)
		}
		g.writeMPAnswer(w, r, ch, reply) // "success" or the passive reply
	}
	// WeCom: an empty 200 means no passive reply; answers go out through the sender.
	return eventType, nil
}

var errPublish = errors.New("event store unavailable, retry")

// publish waits for JetStream's ack within the configured bound, then returns.
// ctx carries the traceparent of the gateway's span.
func (g *Gateway) publish(ctx context.Context, subject, id, schema string, v any) error {
	start := g.now()
	// Encoded into a pooled buffer: the client copies the data into its own
	// write buffer, so the buffer is free again once Publish returns.
	buf := getBuffer()
	defer putBuffer(buf)
	err := json.NewEncoder(buf).Encode(v)
	if err == nil {
		data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		_, err = g.bus.PublishWithin(ctx, g.cfg.PublishTimeout, subject, id, nats.Header{bus.HeaderSchema: {schema}}, data)
	} else {
		err = fmt.Errorf("gateway: marshal %s: %w", schema, err)
	}
	g.metrics.publishSeconds.Observe(g.now().Sub(start).Seconds())
	if err != nil {
		g.log.Error("publish failed", zap.String("subject", subject), zap.String("id", id), zap.Error(err))
		return errors.Join(errPublish, err)
	}
	return nil
}

// bufPool holds request bodies and encoded events: two per callback.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return // an odd large body: let it go rather than pin it
	}
	b.Reset()
	bufPool.Put(b)
}
