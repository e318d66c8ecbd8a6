package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/media"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// Media from legacy systems: POST /api/v1/media stores a file in the hub's
// object store and answers a hub media id (internal/media); a push references
// it as {"media_id": "<hub id>"} or names a URL the gateway fetches
// ({"url": ...}); the sender uploads the content to WeCom once per app and
// reuses WeCom's id while it is valid. The drop-in /cgi-bin/media/upload and
// /cgi-bin/media/get answer in WeCom's shape.

// mediaFetchTimeout bounds the download of a medium a client names by URL:
// a push naming one answers within the server's 30-s write timeout.
const mediaFetchTimeout = 20 * time.Second

// multipartSlack: room for a multipart body's boundaries and headers.
const multipartSlack = 64 << 10

// mediaTransfer replaces the server's read and write timeouts (10 s, 30 s) for
// a medium's body: 20 MB take longer than that on a slow link.
const mediaTransfer = 3 * time.Minute

// slowBody lets this request's body (and answer) take mediaTransfer.
func slowBody(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(mediaTransfer))
	_ = rc.SetWriteDeadline(time.Now().Add(mediaTransfer))
}

func (g *Gateway) mediaRoutes() {
	g.mux.HandleFunc("POST /api/v1/media", g.uploadMedia)
	g.mux.HandleFunc("POST /cgi-bin/media/upload", g.dropInUploadMedia)
	g.mux.HandleFunc("GET /cgi-bin/media/get", g.dropInGetMedia)
	g.mux.HandleFunc("GET /api/v1/media/{app}/{media_id}", g.getMedia)
}

// mediaRequest is the JSON form of POST /api/v1/media: a URL for the hub to fetch.
type mediaRequest struct {
	URL      string `json:"url"`
	Type     string `json:"type"`
	Filename string `json:"filename"`
}

// uploadMedia is POST /api/v1/media?app=&type=: a multipart body (field
// "media", as WeCom names it) or JSON {"url", "type", "filename"}. 201 with
// the stored medium.
func (g *Gateway) uploadMedia(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	slowBody(w)
	q := r.URL.Query()
	app, typ := q.Get("app"), q.Get("type")
	if app == "" {
		writePushError(w, badField("app", "is required (?app=<app>)"))
		return
	}
	if _, ok := g.cfg.WeCom.App(app); !ok {
		writePushError(w, badField("app", "no WeCom app named %q", app))
		return
	}
	if !keyAllows(key, app) {
		writePushError(w, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not use app %q", key.Name, app)})
		return
	}
	var (
		data     []byte
		filename string
		err      error
	)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var req mediaRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.URL == "" {
			writePushError(w, badField("url", "the JSON body is {\"url\": ..., \"type\": ..., \"filename\": ...} with url required"))
			return
		}
		if req.Type != "" {
			if typ != "" && typ != req.Type {
				writePushError(w, badField("type", "?type=%s and the body's %q differ", typ, req.Type))
				return
			}
			typ = req.Type
		}
		if err := checkType(typ); err != nil {
			writePushError(w, err)
			return
		}
		data, filename, err = g.fetchURL(r.Context(), req.URL, typ)
		if req.Filename != "" {
			filename = req.Filename
		}
	} else {
		if err := checkType(typ); err != nil {
			writePushError(w, err)
			return
		}
		data, filename, err = readMultipart(w, r, typ)
	}
	if err != nil {
		writePushError(w, mediaPushError(typ, err))
		return
	}
	st, err := media.Put(r.Context(), g.bus, typ, filename, data)
	if err != nil {
		writePushError(w, mediaPushError(typ, err))
		return
	}
	g.log.Info("media stored", zap.String("client", key.Name), zap.String("app", app), zap.String("type", typ),
		zap.String("sha256", st.SHA256), zap.Int64("size", st.Size))
	writeJSON(w, http.StatusCreated, st)
}

func checkType(typ string) error {
	if _, ok := media.Limits[typ]; !ok {
		return badField("type", "must be one of image, voice, video, file (?type=), got %q", typ)
	}
	return nil
}

// readMultipart reads the form field "media" of r, at most typ's limit.
func readMultipart(w http.ResponseWriter, r *http.Request, typ string) ([]byte, string, error) {
	limit := media.Limits[typ]
	r.Body = http.MaxBytesReader(w, r.Body, limit+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", badField("media", "the body is multipart/form-data with the file in field \"media\", or JSON with a url: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, "", badField("media", "no form field named \"media\"")
		}
		if err != nil {
			return nil, "", tooLargeOr(typ, err)
		}
		if part.FormName() != "media" {
			_ = part.Close()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return nil, "", tooLargeOr(typ, err)
		}
		return data, part.FileName(), nil
	}
}

func tooLargeOr(typ string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &media.LimitError{Type: typ, TooLarge: true, Msg: fmt.Sprintf("%s larger than WeCom's limit for %s, %d MB", typ, typ, media.Limits[typ]>>20)}
	}
	return badField("media", "reading the multipart body: %v", err)
}

// mediaPushError maps internal/media's errors to the API's 400/413.
func mediaPushError(typ string, err error) error {
	var le *media.LimitError
	var fe *media.FetchError
	var pe *pushError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &le) && le.TooLarge:
		return &pushError{status: http.StatusRequestEntityTooLarge, field: "media", msg: le.Msg}
	case errors.As(err, &le):
		return badField("media", "%s", le.Msg)
	case errors.As(err, &fe):
		return badField("url", "%s", fe.Msg)
	}
	return err // the store: 503
}

func (g *Gateway) fetchURL(ctx context.Context, rawURL, typ string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, mediaFetchTimeout)
	defer cancel()
	return g.urls.Fetch(ctx, rawURL, typ)
}

// resolveMedia rewrites a push's media object for the sender: a hub media id
// or a URL (fetched and stored now) becomes a reference to the stored object
// (bus.MediaObjectField); WeCom's own media ids pass unchanged.
func (g *Gateway) resolveMedia(ctx context.Context, fields map[string]json.RawMessage) error {
	var typ string
	_ = json.Unmarshal(fields["msgtype"], &typ)
	if _, ok := media.Limits[typ]; !ok || fields[typ] == nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(fields[typ], &obj); err != nil {
		return badField(typ, "must be an object")
	}
	var id, rawURL, filename string
	_ = json.Unmarshal(obj["media_id"], &id)
	_ = json.Unmarshal(obj["url"], &rawURL)
	_ = json.Unmarshal(obj["filename"], &filename)
	var sha string
	switch {
	case rawURL != "":
		data, name, err := g.fetchURL(ctx, rawURL, typ)
		if err == nil {
			if filename != "" {
				name = filename
			}
			var st media.Stored
			st, err = media.Put(ctx, g.bus, typ, name, data)
			sha = st.SHA256
		}
		if err != nil {
			return fieldOf(typ+".url", mediaPushError(typ, err))
		}
	case strings.HasPrefix(id, media.HubIDPrefix):
		var ok bool
		if sha, ok = media.ParseHubID(id); !ok {
			return badField(typ+".media_id", "%q is not a hub media id (wxhm_ and 64 hex digits)", id)
		}
		st, err := media.Stat(ctx, g.bus, sha)
		if errors.Is(err, media.ErrNotFound) {
			return badField(typ+".media_id", "hub media %s is not stored (expired or never uploaded): upload it again", id)
		}
		if err != nil {
			return err
		}
		if err := media.Check(typ, st.Size, nil); err != nil {
			return fieldOf(typ+".media_id", mediaPushError(typ, err))
		}
	default:
		return nil // WeCom's own media id
	}
	delete(obj, "media_id")
	delete(obj, "url")
	delete(obj, "filename")
	obj[bus.MediaObjectField], _ = json.Marshal(sha)
	fields[typ], _ = json.Marshal(obj)
	return nil
}

func fieldOf(field string, err error) error {
	var pe *pushError
	if errors.As(err, &pe) {
		out := *pe
		out.field = field
		return &out
	}
	return err
}

// dropInUploadMedia is POST /cgi-bin/media/upload?access_token=&type=,
// answering as WeCom does but with a hub media id (valid while the hub keeps
// the content, longer than WeCom's 3 days).
func (g *Gateway) dropInUploadMedia(w http.ResponseWriter, r *http.Request) {
	key, ok := g.dropInCaller(w, r)
	if !ok {
		return
	}
	slowBody(w)
	typ := r.URL.Query().Get("type")
	if _, ok := media.Limits[typ]; !ok {
		writeJSON(w, http.StatusOK, wecomError(40004, fmt.Sprintf("invalid media type %q: image, voice, video or file", typ)))
		return
	}
	data, filename, err := readMultipart(w, r, typ)
	var st media.Stored
	if err == nil {
		st, err = media.Put(r.Context(), g.bus, typ, filename, data)
	}
	var le *media.LimitError
	var pe *pushError
	switch {
	case errors.As(err, &le) && le.TooLarge:
		writeJSON(w, http.StatusOK, wecomError(45001, "media size out of limit: "+le.Msg))
	case errors.As(err, &le) && int64(len(data)) <= media.MinSize:
		writeJSON(w, http.StatusOK, wecomError(40006, "invalid file size: "+le.Msg))
	case errors.As(err, &le):
		writeJSON(w, http.StatusOK, wecomError(40005, "invalid file type: "+le.Msg))
	case errors.As(err, &pe):
		writeJSON(w, http.StatusOK, wecomError(41005, "media data missing: "+pe.msg))
	case err != nil:
		g.log.Warn("drop-in media not stored", zap.Error(err))
		writeJSON(w, http.StatusOK, wecomError(-1, "system busy"))
	default:
		g.log.Info("media stored", zap.String("client", key.Name), zap.String("type", typ), zap.String("sha256", st.SHA256))
		writeJSON(w, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok", "type": typ, "media_id": st.MediaID,
			"created_at": strconv.FormatInt(st.CreatedAt.Unix(), 10)})
	}
}

// fetchWeComMedia downloads an app's WeCom medium with the shared token (a
// token WeCom calls expired is renewed once) into the store.
// An Official Account's medium (a customer's image, voice or video) comes
// from the account's own media/get with the account's token.
func (g *Gateway) fetchWeComMedia(ctx context.Context, appName, mediaID string) (bus.MediaObject, error) {
	var token func(fresh bool) (string, error)
	var get func(ctx context.Context, token, mediaID string) (wecom.Media, error)
	if app, ok := g.cfg.WeCom.App(appName); ok {
		token = func(fresh bool) (string, error) { return g.appToken(ctx, app, fresh) }
		get = g.wecom.GetMedia
	} else if acct, ok := g.cfg.MP.Account(appName); ok && acct.Secret != "" {
		token = func(fresh bool) (string, error) { return g.accountToken(ctx, acct, fresh) }
		get = g.mpClient.GetMedia
	} else {
		return bus.MediaObject{}, fmt.Errorf("%w: no WeCom app or Official Account with a secret named %q", ErrTokenUnavailable, appName)
	}
	tok, err := token(false)
	if err != nil {
		return bus.MediaObject{}, err
	}
	md, err := get(ctx, tok, mediaID)
	if wecom.IsTokenExpired(err) || isMPStaleToken(err) {
		if tok, err = token(true); err != nil {
			return bus.MediaObject{}, err
		}
		md, err = get(ctx, tok, mediaID)
	}
	var ae *wecom.APIError
	if errors.As(err, &ae) && ae.Code == 40007 {
		return bus.MediaObject{}, fmt.Errorf("%w: %w", media.ErrWeComUnknown, err)
	}
	if err != nil {
		return bus.MediaObject{}, fmt.Errorf("gateway: media/get: %w", err)
	}
	name := md.Filename
	if name == "" {
		name = mediaID
	}
	name = media.Filename(name, md.ContentType, md.Data)
	return g.bus.PutMedia(ctx, name, bytes.NewReader(md.Data))
}

// getMedia is GET /api/v1/media/{app}/{media_id}: an inbound medium of app
// (WeCom's media id from an event), or a hub medium, streamed. The first read
// fetches it from WeCom into the store; later reads come from the store.
func (g *Gateway) getMedia(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	app, id := r.PathValue("app"), r.PathValue("media_id")
	if _, ok := g.cfg.WeCom.App(app); !ok {
		if _, ok := g.cfg.MP.Account(app); !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no WeCom app or Official Account named %q", app)})
			return
		}
	}
	if !keyAllows(key, app) {
		writePushError(w, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not use app %q", key.Name, app)})
		return
	}
	rc, obj, cached, err := g.openMedia(r.Context(), app, id)
	switch {
	case errors.Is(err, media.ErrNotFound), errors.Is(err, media.ErrWeComUnknown):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	case err != nil:
		g.log.Warn("media not fetched", zap.String("app", app), zap.Error(err))
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "media not available now, retry: " + err.Error()})
		return
	}
	defer rc.Close()
	g.metrics.mediaReads.WithLabelValues(app, strconv.FormatBool(cached)).Inc()
	serveMedia(w, rc, obj)
}

// openMedia opens a hub medium from the store, or app's WeCom medium through the cache.
func (g *Gateway) openMedia(ctx context.Context, app, id string) (io.ReadCloser, bus.MediaObject, bool, error) {
	if sha, ok := media.ParseHubID(id); ok {
		rc, obj, err := g.bus.GetMedia(ctx, sha)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			err = media.ErrNotFound
		}
		return rc, obj, true, err
	}
	return g.inbound.Open(ctx, app, id)
}

// serveMedia streams obj with its type, length and name.
func serveMedia(w http.ResponseWriter, rc io.Reader, obj bus.MediaObject) {
	slowBody(w)
	br := bufio.NewReaderSize(rc, 512)
	head, _ := br.Peek(512)
	w.Header().Set("Content-Type", media.ContentType(obj.Filename, head))
	w.Header().Set("Content-Length", strconv.FormatInt(obj.Size, 10))
	// The name always ends in the content's extension (voice.amr), so a
	// client saving it knows the format.
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": media.Filename(obj.Filename, "", head)}))
	w.Header().Set("X-Wxhub-Sha256", obj.SHA256)
	_, _ = io.Copy(w, br)
}

// dropInGetMedia is GET /cgi-bin/media/get?access_token=&media_id=: a hub
// medium from the store, or a WeCom medium of one of the key's apps (through
// the same cache as the media API). Errors are WeCom's JSON.
func (g *Gateway) dropInGetMedia(w http.ResponseWriter, r *http.Request) {
	key, ok := g.dropInCaller(w, r)
	if !ok {
		return
	}
	id := r.URL.Query().Get("media_id")
	if id == "" {
		writeJSON(w, http.StatusOK, wecomError(41006, "media_id missing"))
		return
	}
	var apps []string
	for _, a := range g.cfg.WeCom.Apps {
		if keyAllows(key, a.Name) {
			apps = append(apps, a.Name)
		}
	}
	if _, hub := media.ParseHubID(id); hub {
		apps = []string{""}
	}
	var err error = media.ErrWeComUnknown
	for _, app := range apps {
		var rc io.ReadCloser
		var obj bus.MediaObject
		rc, obj, _, err = g.openMedia(r.Context(), app, id)
		if err == nil {
			defer rc.Close()
			serveMedia(w, rc, obj)
			return
		}
		if !errors.Is(err, media.ErrWeComUnknown) {
			break
		}
	}
	if errors.Is(err, media.ErrNotFound) || errors.Is(err, media.ErrWeComUnknown) {
		writeJSON(w, http.StatusOK, wecomError(40007, "invalid media_id"))
		return
	}
	g.log.Warn("drop-in media not fetched", zap.Error(err))
	writeJSON(w, http.StatusOK, wecomError(-1, "system busy"))
}

// mediaMsgTypes are the WeCom messages whose MediaId the hub serves.
var mediaMsgTypes = map[string]bool{"image": true, "voice": true, "video": true, "file": true, "shortvideo": true}

// voiceAudio is what a voice message's audio is (from its Format), or nil.
func voiceAudio(d schemas.EventData) *schemas.Audio {
	if d.MsgType != "voice" {
		return nil
	}
	if a, ok := media.VoiceAudio(d.Format); ok {
		return &a
	}
	return nil
}

// mediaURL is the hub URL of a WeCom or Official Account message's medium, or
// "" (an account without a secret cannot fetch it).
func (g *Gateway) mediaURL(ch *channel, d schemas.EventData) string {
	if d.MediaID == "" || !mediaMsgTypes[d.MsgType] {
		return ""
	}
	if ch.kind != schemas.ChannelWeCom {
		if acct, ok := g.cfg.MP.Account(ch.name); !ok || acct.Secret == "" {
			return ""
		}
	}
	base := g.cfg.PublicURL
	if base == "" {
		base = g.cfg.Auth.PublicURL
	}
	return strings.TrimSuffix(base, "/") + "/api/v1/media/" + url.PathEscape(ch.name) + "/" + url.PathEscape(d.MediaID)
}

// mpMediaOnly refuses, for an Official Account, what only WeCom apps send: a
// hub media id or a URL (the sender uploads stored media to WeCom apps only).
func mpMediaOnly(msgtype string, raw json.RawMessage) error {
	if _, ok := media.Limits[msgtype]; !ok {
		return nil
	}
	var obj struct {
		MediaID string `json:"media_id"`
		URL     string `json:"url"`
	}
	_ = json.Unmarshal(raw, &obj)
	if obj.URL != "" || strings.HasPrefix(obj.MediaID, media.HubIDPrefix) {
		return badField(msgtype, "an Official Account sends media by its own media_id (WeChat's media/upload); hub media ids and urls are for WeCom apps")
	}
	return nil
}

// isMPStaleToken: an Official Account's 40001 on a call is a token no longer
// the latest (another process took a new one); a fresh one from the store helps.
func isMPStaleToken(err error) bool {
	var ae *wecom.APIError
	return errors.As(err, &ae) && ae.Code == 40001
}
