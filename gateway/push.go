package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/tracing"
)

// pushError is a push-API failure with its HTTP status and, for 400, the field at fault.
type pushError struct {
	status int
	field  string
	msg    string
}

func (e *pushError) Error() string {
	if e.field != "" {
		return e.field + ": " + e.msg
	}
	return e.msg
}

func badField(field, format string, args ...any) *pushError {
	return &pushError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// pushAccepted is the answer to an accepted push.
type pushAccepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// authenticate finds the API key of a request's bearer token in constant time
// per key, so that timing does not reveal how much of a key was right.
func (g *Gateway) authenticate(r *http.Request) (*APIKey, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, false
	}
	return g.keyBySecret(token)
}

func (g *Gateway) keyBySecret(secret string) (*APIKey, bool) {
	var found *APIKey
	for i := range g.keys {
		if subtle.ConstantTimeCompare([]byte(g.keys[i].Key), []byte(secret)) == 1 {
			found = &g.keys[i]
		}
	}
	return found, found != nil
}

func keyAllows(k *APIKey, app string) bool {
	return slices.Contains(k.Apps, "*") || slices.Contains(k.Apps, app)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writePushError(w http.ResponseWriter, err error) {
	var pe *pushError
	if !errors.As(err, &pe) {
		pe = &pushError{status: http.StatusServiceUnavailable, msg: "queue unavailable, retry"}
	}
	body := map[string]string{"error": pe.msg}
	if pe.field != "" {
		body["field"] = pe.field
	}
	writeJSON(w, pe.status, body)
}

// pushMessage is POST /api/v1/messages: WeCom's message/send body plus app,
// priority and dedup_key. 202 once the message is durably queued.
func (g *Gateway) pushMessage(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		g.metrics.pushes.WithLabelValues("unknown", "", "401").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	acc, app, err := g.enqueue(callerTrace(r), key, body, true)
	g.metrics.pushes.WithLabelValues(key.Name, app, resultLabel(err)).Inc()
	if err != nil {
		writePushError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acc)
}

func resultLabel(err error) string {
	var pe *pushError
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &pe):
		return strconv.Itoa(pe.status)
	default:
		return "503"
	}
}

// enqueue validates a push body, records it as queued and publishes it to
// WXHUB_OUT. A repeated dedup_key returns the first message's id and status.
// strict refuses unknown fields (the push API); else they are dropped (drop-in).
func (g *Gateway) enqueue(ctx context.Context, key *APIKey, body []byte, strict bool) (pushAccepted, string, error) {
	if err := schemas.Validate("push.v1", body); err != nil {
		var fe *schemas.FieldError
		if errors.As(err, &fe) {
			return pushAccepted{}, "", badField(fe.Field, "%s", fe.Reason)
		}
		return pushAccepted{}, "", err
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return pushAccepted{}, "", badField("", "body is not a JSON object")
	}
	if _, ok := fields["account"]; ok {
		return g.enqueueMP(ctx, key, fields, strict) // an Official Account (mp_push.go)
	}
	if err := checkFields(fields, strict); err != nil {
		return pushAccepted{}, "", err
	}
	if err := checkRecipients(fields); err != nil {
		return pushAccepted{}, "", err
	}
	app, err := g.resolveApp(fields)
	if err != nil {
		return pushAccepted{}, "", err
	}
	if !keyAllows(key, app) {
		return pushAccepted{}, app, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not send through app %q", key.Name, app)}
	}
	if err := g.expandRecipients(ctx, app, fields); err != nil {
		return pushAccepted{}, app, err
	}
	if err := g.resolveMedia(ctx, fields); err != nil { // media.go
		return pushAccepted{}, app, err
	}
	priority := schemas.PriorityNormal
	if raw, ok := fields["priority"]; ok {
		json.Unmarshal(raw, &priority)
	}
	var dedupKey string
	if raw, ok := fields["dedup_key"]; ok {
		json.Unmarshal(raw, &dedupKey)
	}
	kind := schemas.KindMessage
	if _, ok := fields["chatid"]; ok {
		kind = schemas.KindAppChat
	}
	// The sender owns agentid and the duplicate check: strip what is ours.
	for _, f := range []string{"app", "agentid", "priority", "dedup_key"} {
		delete(fields, f)
	}
	wecomBody, _ := json.Marshal(fields)

	acc, err := g.queue(ctx, key, app, kind, priority, dedupKey, "", wecomBody)
	return acc, app, err
}

// queue records a new message as queued under a random id and publishes it to
// WXHUB_OUT. A dedup key already seen from this client (kept server-side in the
// status bucket, see dedupRecordKey) returns the first message's id and status;
// nothing is published again. id, when not empty, is used instead of a random
// one (the first message of a new chat: "<create id>-1").
func (g *Gateway) queue(ctx context.Context, key *APIKey, app, kind, priority, dedupKey, id string, wecomBody []byte) (_ pushAccepted, err error) {
	status, err := g.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return pushAccepted{}, err
	}
	if id == "" {
		id = newMessageID()
	}
	var dedupRec string
	if dedupKey != "" {
		dedupRec = dedupRecordKey(key.Name, dedupKey)
		ref, _ := json.Marshal(dedupRef{ID: id})
		if _, err := status.Create(ctx, dedupRec, ref); err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return pushAccepted{}, err
			}
			return g.firstOf(ctx, status, dedupRec), nil
		}
	}
	// undo removes the records of a message that was not queued after all, so
	// that the client's retry creates it again.
	undo := func() {
		status.Delete(context.WithoutCancel(ctx), bus.StatusKey(id))
		if dedupRec != "" {
			status.Delete(context.WithoutCancel(ctx), dedupRec)
		}
	}
	queued := schemas.MessageStatus{ID: id, App: app, Client: key.Name, Status: schemas.StatusQueued, UpdatedAt: g.now().UTC()}
	rec, _ := json.Marshal(queued)
	if _, err := status.Create(ctx, bus.StatusKey(id), rec); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			if dedupRec != "" {
				status.Delete(context.WithoutCancel(ctx), dedupRec)
			}
			return pushAccepted{}, err
		}
		// Only a given id repeats (the first message of a repeated chat create).
		return statusOf(ctx, status, id), nil
	}
	ctx, end := tracing.StartSpan(ctx, "gateway.push", bus.TraceParentFrom(ctx))
	defer func() { end(err) }()
	tp := bus.TraceParentFrom(ctx)
	out := schemas.Outbound{
		SpecVersion:     schemas.SpecVersion,
		ID:              id,
		Source:          "api/" + key.Name,
		Type:            "wxhub.out." + kind,
		Time:            g.now().UTC(),
		DataContentType: "application/json",
		TraceParent:     tp,
		Data: schemas.OutboundData{
			App: app, Kind: kind, Priority: priority, DedupKey: dedupKey, Body: wecomBody,
		},
	}
	if err := g.publish(ctx, bus.OutSubject(app), id, schemas.SchemaOutbound, out); err != nil {
		undo()
		return pushAccepted{}, err
	}
	g.log.Info("push queued", zap.String("id", id), zap.String("client", key.Name), zap.String("app", app),
		zap.String("kind", kind), zap.String("priority", priority))
	return pushAccepted{ID: id, Status: schemas.StatusQueued}, nil
}

// resolveApp maps "app" and/or "agentid" (a number or a string, as WeCom
// accepts) to a configured app name.
func (g *Gateway) resolveApp(fields map[string]json.RawMessage) (string, error) {
	var name string
	if raw, ok := fields["app"]; ok {
		json.Unmarshal(raw, &name)
		if _, ok := g.cfg.WeCom.App(name); !ok {
			return "", badField("app", "no app named %q", name)
		}
	}
	raw, ok := fields["agentid"]
	if !ok {
		return name, nil
	}
	agentID, err := strconv.ParseInt(strings.Trim(string(raw), `"`), 10, 64)
	if err != nil {
		return "", badField("agentid", "must be a number")
	}
	for _, a := range g.cfg.WeCom.Apps {
		if a.AgentID == agentID {
			if name != "" && name != a.Name {
				return "", badField("agentid", "agent %d is app %q, not %q", agentID, a.Name, name)
			}
			return a.Name, nil
		}
	}
	return "", badField("agentid", "no app with agent id %d", agentID)
}

// newMessageID is a random message id: it cannot be guessed from anything the
// client sent (a dedup key is mapped to it server-side, see dedupRecordKey).
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return "m" + hex.EncodeToString(b[:])
}

// dedupRef is the value of a dedup record: the id of the first message pushed
// with that client's dedup key.
type dedupRef struct {
	ID string `json:"dedup_of"`
}

// dedupRecordKey is the status-bucket key of a client's dedup key. It expires
// with the bucket's TTL (nats.status_ttl), like the status it points to.
func dedupRecordKey(client, dedupKey string) string {
	sum := sha256.Sum256([]byte(client + "\x00" + dedupKey))
	return "dedup_" + hex.EncodeToString(sum[:16])
}

// repeatedDedup is the first message of key's dedupKey when one was pushed
// (ok false: none, or no dedup key).
func (g *Gateway) repeatedDedup(ctx context.Context, key *APIKey, dedupKey string) (pushAccepted, bool) {
	if dedupKey == "" {
		return pushAccepted{}, false
	}
	status, err := g.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return pushAccepted{}, false // queue answers the error
	}
	rec := dedupRecordKey(key.Name, dedupKey)
	if _, err := status.Get(ctx, rec); err != nil {
		return pushAccepted{}, false
	}
	return g.firstOf(ctx, status, rec), true
}

// firstOf answers a repeated dedup key with the first message's id and status.
func (g *Gateway) firstOf(ctx context.Context, status jetstream.KeyValue, dedupRec string) pushAccepted {
	var ref dedupRef
	if e, err := status.Get(ctx, dedupRec); err == nil && json.Unmarshal(e.Value(), &ref) == nil && ref.ID != "" {
		return statusOf(ctx, status, ref.ID)
	}
	// The first push is still between its two records: it is being queued.
	return pushAccepted{ID: ref.ID, Status: schemas.StatusQueued}
}

func statusOf(ctx context.Context, status jetstream.KeyValue, id string) pushAccepted {
	if prev, err := status.Get(ctx, bus.StatusKey(id)); err == nil {
		var st schemas.MessageStatus
		if json.Unmarshal(prev.Value(), &st) == nil && st.Status != "" {
			return pushAccepted{ID: id, Status: st.Status}
		}
	}
	return pushAccepted{ID: id, Status: schemas.StatusQueued}
}

// messageStatus is GET /api/v1/messages/{id}: the status of a message pushed by
// the same API key (or any message, for an admin key).
func (g *Gateway) messageStatus(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
		return
	}
	kv, err := g.bus.KV(r.Context(), bus.BucketStatus)
	if err != nil {
		writePushError(w, err)
		return
	}
	id := r.PathValue("id")
	var st schemas.MessageStatus
	var entry jetstream.KeyValueEntry
	if strings.HasPrefix(id, "dedup_") {
		err = errNoMessage // a dedup record is not a message
	} else {
		entry, err = kv.Get(r.Context(), bus.StatusKey(id))
	}
	if err != nil || json.Unmarshal(entry.Value(), &st) != nil || st.Status == "" || !(key.Admin || st.Client == key.Name) {
		// Another client's message is as unknown as a missing one.
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such message"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

var errNoMessage = errors.New("no such message")

// Drop-in WeCom endpoints: a system that already calls WeCom points its base
// URL here and its messages join the hub's queue, limits and quiet hours.

const dropInTokenTTL = 7200 * time.Second

// dropInToken is GET /cgi-bin/gettoken?corpid=&corpsecret= (corpsecret = API key).
// The token is stateless (an HMAC under the key) so every gateway replica accepts
// it, and it is the same for a whole 2-hour window, as WeCom's is while valid.
func (g *Gateway) dropInToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("corpid") == "" || q.Get("corpsecret") == "" {
		writeJSON(w, http.StatusOK, wecomError(41002, "corpid or corpsecret missing"))
		return
	}
	// Any corp of the hub: the token names the API key, the body's agentid the app (and so the corp).
	if !slices.Contains(g.cfg.WeCom.CorpIDs(), q.Get("corpid")) {
		writeJSON(w, http.StatusOK, wecomError(40013, "invalid corpid"))
		return
	}
	key, ok := g.keyBySecret(q.Get("corpsecret"))
	if !ok {
		writeJSON(w, http.StatusOK, wecomError(40001, "invalid credential"))
		return
	}
	now := g.now()
	window := dropInTokenTTL.Nanoseconds()
	expiry := time.Unix(0, (now.UnixNano()/window+1)*window)
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode": 0, "errmsg": "ok",
		"access_token": signDropInToken(key, expiry),
		"expires_in":   int(expiry.Sub(now).Seconds()),
	})
}

func signDropInToken(key *APIKey, expiry time.Time) string {
	payload := key.Name + "." + strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key.Key))
	mac.Write([]byte(payload))
	return "wxh1." + payload + "." + hex.EncodeToString(mac.Sum(nil))
}

// dropInKey checks a drop-in token: 40014 when it is not ours, 42001 when expired.
func (g *Gateway) dropInKey(token string) (*APIKey, int) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 || parts[0] != "wxh1" {
		return nil, 40014
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return nil, 40014
	}
	for i := range g.keys {
		k := &g.keys[i]
		if k.Name != parts[1] {
			continue
		}
		if !hmac.Equal([]byte(signDropInToken(k, time.Unix(exp, 0))), []byte(token)) {
			return nil, 40014
		}
		if !g.now().Before(time.Unix(exp, 0)) {
			return nil, 42001
		}
		return k, 0
	}
	return nil, 40014
}

func wecomError(code int, msg string) map[string]any {
	return map[string]any{"errcode": code, "errmsg": msg}
}

// dropInSend is POST /cgi-bin/message/send?access_token=, answering in WeCom's shape.
func (g *Gateway) dropInSend(w http.ResponseWriter, r *http.Request) {
	key, body, ok := g.dropInAuth(w, r)
	if !ok {
		return
	}
	acc, app, err := g.enqueue(callerTrace(r), key, body, false)
	g.metrics.pushes.WithLabelValues(key.Name, app, resultLabel(err)).Inc()
	if err != nil {
		var pe *pushError
		switch {
		case errors.As(err, &pe) && pe.status == http.StatusForbidden:
			writeJSON(w, http.StatusOK, wecomError(60011, "no privilege to access this app: "+pe.msg))
		case errors.As(err, &pe):
			writeJSON(w, http.StatusOK, wecomError(40008, "invalid message: "+pe.Error()))
		default:
			writeJSON(w, http.StatusOK, wecomError(-1, "system busy"))
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "", "invalidtag": "",
		"unlicenseduser": "", "msgid": acc.ID, "response_code": dropInResponseCode(body, acc.ID), // cards.go
	})
}

// callerTrace continues the trace of a legacy system that sent a traceparent.
func callerTrace(r *http.Request) context.Context {
	return bus.WithTraceParent(r.Context(), r.Header.Get(bus.HeaderTraceParent))
}

// publishHook queues an inbound hook's message like a push from a client named
// "hook/<name>".
func (g *Gateway) publishHook(ctx context.Context, hook string, m schemas.OutboundData) (string, error) {
	key := &APIKey{Name: "hook/" + hook, Apps: []string{m.App}}
	acc, err := g.queue(ctx, key, m.App, m.Kind, m.Priority, m.DedupKey, "", m.Body)
	return acc.ID, err
}
