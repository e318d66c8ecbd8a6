package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/nats-io/nats.go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// stored is the media API's answer.
type stored struct {
	MediaID   string    `json:"media_id"`
	Type      string    `json:"type"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Error     string    `json:"error"`
}

// pushSent pushes body and waits until the sender reports it sent.
func pushSent(t *testing.T, ctx context.Context, api *resty.Client, body map[string]any) {
	t.Helper()
	var acc struct{ ID string }
	resp, err := api.R().SetContext(ctx).SetResult(&acc).SetBody(body).Post("/api/v1/messages")
	if err != nil || resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("push: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	pollStatus(t, ctx, api, acc.ID, "sent", func(s schemas.MessageStatus) bool { return s.Status == schemas.StatusSent })
}

func sentMediaIDs(s *sim.Server, msgtype string) []string {
	var ids []string
	for _, m := range s.Sent() {
		if m.MsgType != msgtype {
			continue
		}
		var b map[string]json.RawMessage
		var obj struct {
			MediaID string `json:"media_id"`
		}
		_ = json.Unmarshal(m.Body, &b)
		_ = json.Unmarshal(b[msgtype], &obj)
		ids = append(ids, obj.MediaID)
	}
	return ids
}

// A file uploaded once through the media API and sent twice is uploaded to
// WeCom once and both messages carry the same WeCom media id; the same content
// uploaded again gets the same hub id; WeCom's limits are refused with 400/413
// naming the limit; a URL in a push is fetched, stored and sent in one call.
func TestE2EMediaUploadOnceSendTwice(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 60*time.Second)
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	upload := func(typ, name string, data []byte) (int, stored) {
		t.Helper()
		var st stored
		resp, err := api.R().SetContext(ctx).SetResult(&st).SetError(&st).
			SetFileReader("media", name, bytes.NewReader(data)).Post("/api/v1/media?app=helpdesk&type=" + typ)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() == http.StatusCreated {
			if err := schemas.Validate("media.v1", resp.Body()); err != nil {
				t.Fatalf("the answer %s breaks media.v1.json: %v", resp.Body(), err)
			}
		}
		return resp.StatusCode(), st
	}
	report := []byte("PK\x03\x04 销售周报 第48周")
	status, st := upload("file", "周报.xlsx", report)
	if status != http.StatusCreated || !strings.HasPrefix(st.MediaID, "wxhm_") || st.Size != int64(len(report)) ||
		st.Type != "file" || len(st.SHA256) != 64 || st.CreatedAt.IsZero() || st.ExpiresAt.Sub(st.CreatedAt) != 7*24*time.Hour {
		t.Fatalf("upload: %d %+v", status, st)
	}
	if _, again := upload("file", "周报-副本.xlsx", report); again.MediaID != st.MediaID {
		t.Fatalf("the same content got %s, then %s", st.MediaID, again.MediaID)
	}
	for _, user := range []string{"zhangsan", "lisi"} {
		pushSent(t, ctx, api, map[string]any{"app": "helpdesk", "touser": user, "msgtype": "file", "file": map[string]any{"media_id": st.MediaID}})
	}
	ups := e.sim.Uploads()
	if len(ups) != 1 || !bytes.Equal(ups[0].Data, report) {
		t.Fatalf("WeCom got %d uploads, want 1", len(ups))
	}
	if ids := sentMediaIDs(e.sim, "file"); len(ids) != 2 || ids[0] != ups[0].ID || ids[1] != ups[0].ID {
		t.Fatalf("sent media ids %v, want twice %s", ids, ups[0].ID)
	}

	// WeCom's own media id passes through unchanged.
	own := e.sim.AddMedia("helpdesk", "file", "own.pdf", []byte("%PDF-1.4 own"))
	pushSent(t, ctx, api, map[string]any{"app": "helpdesk", "touser": "wangwu", "msgtype": "file", "file": map[string]any{"media_id": own}})
	if ids := sentMediaIDs(e.sim, "file"); ids[len(ids)-1] != own {
		t.Fatalf("WeCom's media id became %s", ids[len(ids)-1])
	}

	// Limits.
	for _, tt := range []struct {
		name, typ string
		data      []byte
		want      int
		wantMsg   string
	}{
		{"five bytes", "file", []byte("12345"), 400, "larger than 5 bytes"},
		{"voice over 2 MB", "voice", append([]byte("#!AMR\n"), make([]byte, 2<<20)...), 413, "2 MB"},
		{"image not JPG or PNG", "image", []byte("GIF89a......"), 400, "JPG or PNG"},
		{"unknown type", "sticker", []byte("123456"), 400, "image, voice, video, file"},
	} {
		status, st := upload(tt.typ, "x", tt.data)
		if status != tt.want || !strings.Contains(st.Error, tt.wantMsg) {
			t.Errorf("%s: %d %q, want %d naming %q", tt.name, status, st.Error, tt.want, tt.wantMsg)
		}
	}

	// A URL inline in a push: fetched, stored, sent in one call.
	png := append([]byte("\x89PNG\r\n\x1a\n"), []byte("a tiny chart")...)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/chart.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(png)
	}))
	t.Cleanup(files.Close)
	pushSent(t, ctx, api, map[string]any{"app": "helpdesk", "touser": "zhangsan", "msgtype": "image", "image": map[string]any{"url": files.URL + "/chart.png"}})
	ups = e.sim.Uploads()
	if len(ups) != 2 || !bytes.Equal(ups[1].Data, png) || ups[1].Type != "image" || ups[1].Filename != "chart.png" {
		t.Fatalf("uploads after the inline image: %+v", ups)
	}
	// The same URL through the media API: the content is stored already, one hub id.
	var byURL stored
	resp, err := api.R().SetContext(ctx).SetResult(&byURL).SetBody(map[string]any{"url": files.URL + "/chart.png", "type": "image"}).
		Post("/api/v1/media?app=helpdesk")
	if err != nil || resp.StatusCode() != http.StatusCreated || byURL.Size != int64(len(png)) || byURL.Type != "image" {
		t.Fatalf("upload by URL: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	pushSent(t, ctx, api, map[string]any{"app": "helpdesk", "touser": "lisi", "msgtype": "image", "image": map[string]any{"media_id": byURL.MediaID}})
	if n := len(e.sim.Uploads()); n != 2 {
		t.Fatalf("the image sent again by its hub id was uploaded again: %d uploads", n)
	}
	resp, _ = api.R().SetContext(ctx).SetBody(map[string]any{"url": "ftp://files.example/a.png", "type": "image"}).Post("/api/v1/media?app=helpdesk")
	if resp.StatusCode() != http.StatusBadRequest || !strings.Contains(string(resp.Body()), "http and https") {
		t.Fatalf("an ftp URL: %d %s", resp.StatusCode(), resp.Body())
	}
	resp, err = api.R().SetContext(ctx).SetBody(map[string]any{"app": "helpdesk", "touser": "zhangsan", "msgtype": "image",
		"image": map[string]any{"url": files.URL + "/missing.png"}}).Post("/api/v1/messages")
	if err != nil || resp.StatusCode() != http.StatusBadRequest || !strings.Contains(string(resp.Body()), "404") {
		t.Fatalf("a URL that answers 404: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	resp, _ = api.R().SetContext(ctx).SetBody(map[string]any{"app": "helpdesk", "touser": "zhangsan", "msgtype": "file",
		"file": map[string]any{"media_id": "wxhm_" + strings.Repeat("0", 64)}}).Post("/api/v1/messages")
	if resp.StatusCode() != http.StatusBadRequest || !strings.Contains(string(resp.Body()), "file.media_id") {
		t.Fatalf("an unknown hub media id: %d %s", resp.StatusCode(), resp.Body())
	}
}

// The drop-in media/upload answers in WeCom's shape with a hub media id that
// message/send takes; media/get returns the content, and 40007 for an unknown id.
func TestE2EMediaDropIn(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 60*time.Second)
	c := resty.New().SetBaseURL("http://" + e.hubAddr)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := c.R().SetContext(ctx).SetResult(&tok).Get("/cgi-bin/gettoken?corpid=" + e.cfg.WeCom.CorpID + "&corpsecret=" + hub.DemoAPIKey); err != nil || tok.AccessToken == "" {
		t.Fatalf("gettoken: %v", err)
	}
	amr := []byte("#!AMR\n一段语音")
	var up struct {
		ErrCode   int    `json:"errcode"`
		Type      string `json:"type"`
		MediaID   string `json:"media_id"`
		CreatedAt string `json:"created_at"`
	}
	if _, err := c.R().SetContext(ctx).SetResult(&up).SetFileReader("media", "v.amr", bytes.NewReader(amr)).
		Post("/cgi-bin/media/upload?type=voice&access_token=" + tok.AccessToken); err != nil || up.ErrCode != 0 || up.Type != "voice" ||
		!strings.HasPrefix(up.MediaID, "wxhm_") || up.CreatedAt == "" {
		t.Fatalf("media/upload: %v %+v", err, up)
	}
	var small struct{ ErrCode int }
	c.R().SetContext(ctx).SetResult(&small).SetFileReader("media", "x", strings.NewReader("1234")).
		Post("/cgi-bin/media/upload?type=file&access_token=" + tok.AccessToken)
	if small.ErrCode != 40006 {
		t.Fatalf("4 bytes: errcode %d, want 40006", small.ErrCode)
	}
	var sent struct {
		ErrCode int    `json:"errcode"`
		MsgID   string `json:"msgid"`
	}
	if _, err := c.R().SetContext(ctx).SetResult(&sent).SetBody(map[string]any{"agentid": 1000002, "touser": "lisi", "msgtype": "voice",
		"voice": map[string]any{"media_id": up.MediaID}}).Post("/cgi-bin/message/send?access_token=" + tok.AccessToken); err != nil || sent.ErrCode != 0 {
		t.Fatalf("message/send: %v %+v", err, sent)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.MsgType == "voice" && m.User == "lisi" })
	if err != nil {
		t.Fatal(err)
	}
	if ups := e.sim.Uploads(); len(ups) != 1 || !strings.Contains(string(m.Body), ups[0].ID) {
		t.Fatalf("voice sent as %s, uploads %d", m.Body, len(ups))
	}
	resp, err := c.R().SetContext(ctx).Get("/cgi-bin/media/get?media_id=" + up.MediaID + "&access_token=" + tok.AccessToken)
	if err != nil || !bytes.Equal(resp.Body(), amr) || resp.Header().Get("Content-Type") != "audio/amr" {
		t.Fatalf("media/get: %v %q %s", err, resp.Body(), resp.Header().Get("Content-Type"))
	}
	var gone struct{ ErrCode int }
	c.R().SetContext(ctx).SetResult(&gone).ForceContentType("application/json").Get("/cgi-bin/media/get?media_id=3nosuchmedia&access_token=" + tok.AccessToken)
	if gone.ErrCode != 40007 {
		t.Fatalf("unknown media id: errcode %d, want 40007", gone.ErrCode)
	}
}

// An inbound image carries the hub URL of its medium (absolute under
// gateway.public_url); the URL serves the content with an API key for the
// app, from WeCom the first time and from the hub's store after; a key for
// another app is refused.
func TestE2EMediaInboundImageThroughHubURL(t *testing.T) {
	const hrKey = "hr-only-key-0123"
	e := startE2E(t,
		hubtest.WithSim(func(c *sim.Config) {
			c.Apps = append(c.Apps, sim.App{Name: "hr", AgentID: 1000005, Secret: "hr-demo-secret", Token: "hrToken",
				EncodingAESKey: "kWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"})
		}),
		withConfig(func(c *config.Config) {
			c.Gateway.PublicURL = "http://" + c.Gateway.Listen
			c.API.Keys = append(c.API.Keys, gateway.APIKey{Name: "hr-system", Key: hrKey, Apps: []string{"hr"}})
		}))
	ctx := waitCtx(t, 60*time.Second)
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, []byte("a photo of the broken printer")...)
	id := e.sim.AddMedia("helpdesk", "image", "printer.jpg", jpeg)
	if _, err := e.sim.SendMessage(ctx, "helpdesk", "zhangsan", schemas.EventData{MsgType: "image", MediaID: id, PicURL: "http://wework.example/p.jpg"}); err != nil {
		t.Fatal(err)
	}
	s, err := e.bus.JS().Stream(ctx, bus.StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, bus.InSubject(schemas.ChannelWeCom, "helpdesk", "image"))
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.Event
	_ = json.Unmarshal(raw.Data, &ev)
	want := "http://" + e.hubAddr + "/api/v1/media/helpdesk/" + id
	if ev.Data.MediaURL != want {
		t.Fatalf("media_url %q, want %q", ev.Data.MediaURL, want)
	}
	gets := func() int { return e.sim.Stats().Calls["media/get"] }
	before := gets()
	get := func(key string) *resty.Response {
		t.Helper()
		resp, err := resty.New().R().SetContext(ctx).SetAuthToken(key).Get(ev.Data.MediaURL)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := range 2 {
		resp := get(hub.DemoAPIKey)
		if resp.StatusCode() != http.StatusOK || !bytes.Equal(resp.Body(), jpeg) || resp.Header().Get("Content-Type") != "image/jpeg" {
			t.Fatalf("read %d: %d %s %q", i, resp.StatusCode(), resp.Header().Get("Content-Type"), resp.Body())
		}
		if n := gets() - before; n != 1 {
			t.Fatalf("after read %d WeCom's media/get was called %d times, want 1", i, n)
		}
	}
	if resp := get(hrKey); resp.StatusCode() != http.StatusForbidden {
		t.Fatalf("another app's key: %d %s", resp.StatusCode(), resp.Body())
	}
	if resp := get(""); resp.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("no key: %d", resp.StatusCode())
	}
	resp, _ := resty.New().R().SetContext(ctx).SetAuthToken(hub.DemoAPIKey).Get("http://" + e.hubAddr + "/api/v1/media/helpdesk/3nosuchmedia")
	if resp.StatusCode() != http.StatusNotFound {
		t.Fatalf("unknown media id: %d %s", resp.StatusCode(), resp.Body())
	}
}

// routedVoice waits for the voice event with msg_id published to
// WXHUB_ROUTE (sub: a plain subscription on its subjects).
func routedVoice(t *testing.T, ctx context.Context, sub *nats.Subscription, msgID string) schemas.Event {
	t.Helper()
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("voice %s never routed: %v", msgID, err)
		}
		var ev schemas.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Data.MsgType == "voice" && ev.Data.MsgID == msgID {
			return ev
		}
	}
}

// With router.transcriber pointing at a stand-in transcription service, a
// WeCom voice message is routed with data.recognition; audio the service
// cannot read is routed without it.
func TestE2EMediaVoiceTranscript(t *testing.T) {
	e := startE2E(t, withConfig(func(c *config.Config) {
		c.Router.Transcriber = transcribe.Config{BaseURL: c.WeCom.APIBase, Model: "sim-whisper", Timeout: 5 * time.Second}
	}))
	ctx := waitCtx(t, 60*time.Second)
	sub, err := e.bus.Conn().SubscribeSync("wxhub.route.>")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	d, err := e.sim.Voice(ctx, "helpdesk", "zhangsan", "", "找 销售周报")
	if err != nil {
		t.Fatal(err)
	}
	if ev := routedVoice(t, ctx, sub, d.MsgID); ev.Data.Recognition != "找 销售周报" || ev.Data.MediaURL == "" {
		t.Fatalf("routed voice: recognition %q, media_url %q", ev.Data.Recognition, ev.Data.MediaURL)
	}
	if n := e.sim.Stats().Calls["audio/transcriptions"]; n != 1 {
		t.Fatalf("transcriptions = %d", n)
	}
	noise := e.sim.AddMedia("helpdesk", "voice", "noise.amr", []byte("#!NOT-AMR noise"))
	d, err = e.sim.Voice(ctx, "helpdesk", "zhangsan", noise, "")
	if err != nil {
		t.Fatal(err)
	}
	if ev := routedVoice(t, ctx, sub, d.MsgID); ev.Data.Recognition != "" {
		t.Fatalf("unreadable voice routed with recognition %q", ev.Data.Recognition)
	}
	if n := e.sim.Stats().Calls["audio/transcriptions"]; n != 2 {
		t.Fatalf("transcriptions = %d, want 2", n)
	}
	// The event says what the audio is, and the media URL serves it so.
	ev := routedVoiceAudio(t, ctx, e, "")
	if a := ev.Data.Audio; a == nil || a.MIMEType != "audio/amr" || a.Codec != "AMR-NB" || a.SampleRate != 8000 || a.Channels != 1 || a.Extension != ".amr" {
		t.Fatalf("voice audio %+v", ev.Data.Audio)
	}
}

// An Official Account push refuses a hub media id with a message saying so.
func TestE2EMediaHubIDRefusedForAccounts(t *testing.T) {
	e := startE2E(t, withOnly("gateway"))
	ctx := waitCtx(t, 30*time.Second)
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	resp, err := api.R().SetContext(ctx).SetBody(map[string]any{"account": "service", "touser": sim.DemoOpenIDs[0], "msgtype": "image",
		"image": map[string]any{"media_id": "wxhm_" + strings.Repeat("0", 64)}}).Post("/api/v1/messages")
	if err != nil || resp.StatusCode() != http.StatusBadRequest || !strings.Contains(string(resp.Body()), "WeCom apps") {
		t.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
	}
}

// routedVoiceAudio plays a voice message of a file named name (no name: the
// simulator's media/get names none) and checks the hub's media URL serves it
// as AMR with a .amr filename; it returns the routed event.
func routedVoiceAudio(t *testing.T, ctx context.Context, e *e2e, name string) schemas.Event {
	t.Helper()
	sub, err := e.bus.Conn().SubscribeSync("wxhub.route.>")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	amr := []byte("#!AMR\n\x3c\x48\xf5\x1f\x96\x66\x79\xe1")
	id := e.sim.AddMedia("helpdesk", "voice", name, amr)
	d, err := e.sim.Voice(ctx, "helpdesk", "zhangsan", id, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := routedVoice(t, ctx, sub, d.MsgID)
	resp, err := resty.New().R().SetContext(ctx).SetAuthToken(hub.DemoAPIKey).Get(ev.Data.MediaURL)
	if err != nil || resp.StatusCode() != http.StatusOK || !bytes.Equal(resp.Body(), amr) {
		t.Fatalf("voice through the hub: %v %d %q", err, resp.StatusCode(), resp.Body())
	}
	if ct := resp.Header().Get("Content-Type"); ct != "audio/amr" {
		t.Fatalf("voice served as %q, want audio/amr", ct)
	}
	_, params, _ := mime.ParseMediaType(resp.Header().Get("Content-Disposition"))
	if !strings.HasSuffix(params["filename"], ".amr") {
		t.Fatalf("voice served as file %q, want a .amr name (%s)", params["filename"], resp.Header().Get("Content-Disposition"))
	}
	return ev
}

// An Official Account customer's image and voice carry data.media_url, read
// through the account's own media/get (with the account's token) once and
// then from the store; the voice keeps WeChat's own Recognition (the router's
// transcriber is not asked) and says it is AMR; a voice without one is transcribed.
func TestE2EOfficialAccountInboundMedia(t *testing.T) {
	e := startE2E(t, withConfig(func(c *config.Config) {
		c.Gateway.PublicURL = "http://" + c.Gateway.Listen
		c.Router.Transcriber = transcribe.Config{BaseURL: c.WeCom.APIBase, Model: "sim-whisper", Timeout: 5 * time.Second}
	}))
	ctx := waitCtx(t, 60*time.Second)
	sub, err := e.bus.Conn().SubscribeSync("wxhub.route.>")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	openid := sim.DemoOpenIDs[0]
	get := func(url string) *resty.Response {
		t.Helper()
		resp, err := resty.New().R().SetContext(ctx).SetAuthToken(hub.DemoAPIKey).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	gets := func() int { return e.sim.Stats().Calls["media/get"] }

	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, []byte("a photo of the parcel")...)
	id := e.sim.AddMedia("service", "image", "parcel.jpg", jpeg)
	d, err := e.sim.SendMessage(ctx, "service", openid, schemas.EventData{MsgType: "image", MediaID: id, PicURL: "http://mmbiz.example/p.jpg"})
	if err != nil {
		t.Fatal(err)
	}
	ev := routedMsg(t, ctx, sub, "image", d.MsgID)
	if want := "http://" + e.hubAddr + "/api/v1/media/service/" + id; ev.Data.MediaURL != want {
		t.Fatalf("media_url %q, want %q", ev.Data.MediaURL, want)
	}
	before := gets()
	for i := range 2 {
		resp := get(ev.Data.MediaURL)
		if resp.StatusCode() != http.StatusOK || !bytes.Equal(resp.Body(), jpeg) || resp.Header().Get("Content-Type") != "image/jpeg" {
			t.Fatalf("read %d: %d %s %q", i, resp.StatusCode(), resp.Header().Get("Content-Type"), resp.Body())
		}
		if n := gets() - before; n != 1 {
			t.Fatalf("after read %d the account's media/get was called %d times, want 1", i, n)
		}
	}
	// An in-process connector reads the same medium from the store.
	rc, _, err := connectors.OpenMedia(ctx, e.bus, &ev)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, jpeg) || gets()-before != 1 {
		t.Fatalf("OpenMedia read %q, media/get calls %d", got, gets()-before)
	}

	d, err = e.sim.Voice(ctx, "service", openid, "", "查 快递")
	if err != nil {
		t.Fatal(err)
	}
	ev = routedMsg(t, ctx, sub, "voice", d.MsgID)
	if ev.Data.Recognition != "查 快递" || ev.Data.MediaURL == "" || ev.Data.Audio == nil || ev.Data.Audio.MIMEType != "audio/amr" {
		t.Fatalf("routed voice: recognition %q, media_url %q, audio %+v", ev.Data.Recognition, ev.Data.MediaURL, ev.Data.Audio)
	}
	if n := e.sim.Stats().Calls["audio/transcriptions"]; n != 0 {
		t.Fatalf("transcriptions = %d, want 0 (WeChat's recognition kept)", n)
	}
	resp := get(ev.Data.MediaURL)
	if resp.StatusCode() != http.StatusOK || resp.Header().Get("Content-Type") != "audio/amr" || !bytes.HasPrefix(resp.Body(), []byte("#!AMR")) {
		t.Fatalf("voice: %d %s %q", resp.StatusCode(), resp.Header().Get("Content-Type"), resp.Body())
	}
	// A voice WeChat did not recognise is transcribed by the router (through
	// the sender's fetch with the account's token).
	id = e.sim.AddMedia("service", "voice", "v.amr", []byte("#!AMR\n查 订单"))
	if d, err = e.sim.SendMessage(ctx, "service", openid, schemas.EventData{MsgType: "voice", MediaID: id, Format: "amr"}); err != nil {
		t.Fatal(err)
	}
	if ev = routedMsg(t, ctx, sub, "voice", d.MsgID); ev.Data.Recognition != "查 订单" {
		t.Fatalf("unrecognised voice routed with recognition %q", ev.Data.Recognition)
	}
	if n := e.sim.Stats().Calls["audio/transcriptions"]; n != 1 {
		t.Fatalf("transcriptions = %d, want 1", n)
	}
}

// routedMsg waits for the message of msgType with msg_id published to WXHUB_ROUTE.
func routedMsg(t *testing.T, ctx context.Context, sub *nats.Subscription, msgType, msgID string) schemas.Event {
	t.Helper()
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("%s %s never routed: %v", msgType, msgID, err)
		}
		var ev schemas.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Data.MsgType == msgType && ev.Data.MsgID == msgID {
			return ev
		}
	}
}
