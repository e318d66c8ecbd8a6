package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

const (
	corpID = "ww0123456789abcdef"
	token  = "QDG6eK"
	aesKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	apiKey = "erp-key-123456"
)

var fixedNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

type env struct {
	now *atomic.Int64 // unix nanoseconds; tests move it
	srv *httptest.Server
	bus *bus.Bus
	cfg *gateway.Config
	cr  *wecom.Crypter
}

func testConfig() *gateway.Config {
	c := gateway.Config{
		MaxBodyBytes:     4096,
		PassiveReplyWait: -1, // no connector answers here: mp_passive_test.go turns it on
		WeCom: wecom.Config{CorpID: corpID, Apps: []wecom.AppConfig{
			{Name: "helpdesk", AgentID: 1000002, Secret: "s", Token: token, EncodingAESKey: aesKey},
			{Name: "hr", AgentID: 1000003, Secret: "s", Token: token, EncodingAESKey: aesKey},
		}},
		MP: wecom.MPConfig{Accounts: []wecom.AccountConfig{
			{Name: "shop", AppID: "wx5823bf96d3bd56c7", Token: token, EncodingAESKey: aesKey},
			{Name: "plain", AppID: "wxplain", Token: token, PlainText: true},
		}},
		API: gateway.APIConfig{Keys: []gateway.APIKey{
			{Name: "erp", Key: apiKey, Apps: []string{"helpdesk"}},
			{Name: "all", Key: "all-apps-key-1", Apps: []string{"*"}},
		}},
	}
	c = c.WithDefaults()
	return &c
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return startEnv(t, testConfig())
}

// startEnv runs a gateway for cfg on an embedded bus, its clock at fixedNow.
func startEnv(t *testing.T, cfg *gateway.Config) *env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := bustest.Open(t, bus.Config{})
	now := &atomic.Int64{}
	now.Store(fixedNow.UnixNano())
	g, err := gateway.New(*cfg, b, zap.NewNop(), gateway.WithClock(func() time.Time { return time.Unix(0, now.Load()) }),
		gateway.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	app := cfg.WeCom.Apps[0]
	cr, err := wecom.NewCrypter(app.Token, app.EncodingAESKey, cfg.WeCom.CorpID)
	if err != nil {
		t.Fatal(err)
	}
	return &env{now: now, srv: srv, bus: b, cfg: cfg, cr: cr}
}

func (e *env) streamMsgs(t *testing.T, stream string) uint64 {
	t.Helper()
	s, err := e.bus.JS().Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func textXML(user, content, msgID string) []byte {
	x, err := wecom.BuildText(corpID, user, 1000002, fixedNow.Unix(), content, msgID)
	if err != nil {
		panic(err)
	}
	return x
}

// post signs and posts a callback as WeChat does, with the crypter cr.
func (e *env) post(t *testing.T, path string, cr *wecom.Crypter, plain []byte, ts time.Time) *http.Response {
	t.Helper()
	stamp := strconv.FormatInt(ts.Unix(), 10)
	body, sig, err := cr.EncryptCallback(plain, stamp, "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {stamp}, "nonce": {"nonce1"}}
	return e.rawPost(t, path+"?"+q.Encode(), body)
}

func (e *env) rawPost(t *testing.T, pathQuery string, body []byte) *http.Response {
	t.Helper()
	resp, err := http.Post(e.srv.URL+pathQuery, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestCallbackAcceptedAndDeduplicated(t *testing.T) {
	e := newEnv(t)
	plain := textXML("zhangsan", "订单 1001", "4561255354251345929")
	for i := 0; i < 3; i++ { // WeChat's three tries of one MsgId
		if resp := e.post(t, "/wecom/helpdesk/callback", e.cr, plain, fixedNow); resp.StatusCode != 200 {
			t.Fatalf("try %d: status %d", i, resp.StatusCode)
		}
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 1 {
		t.Fatalf("WXHUB_IN has %d messages, want 1", n)
	}
	s, _ := e.bus.JS().Stream(context.Background(), bus.StreamIn)
	raw, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.Event
	if err := json.Unmarshal(raw.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Data.Content != "订单 1001" || ev.Data.User != "zhangsan" || ev.Data.App != "helpdesk" || ev.Source != "wecom/helpdesk" || ev.Type != "wxhub.in.text" {
		t.Errorf("event = %+v", ev)
	}
	if raw.Subject != "wxhub.in.wecom.helpdesk.text" || raw.Header.Get(bus.HeaderSchema) != schemas.SchemaEvent || raw.Header.Get(bus.HeaderTraceParent) == "" {
		t.Errorf("subject %q headers %v", raw.Subject, raw.Header)
	}
}

func TestCallbackEventsWithoutMsgIDStayDistinct(t *testing.T) {
	e := newEnv(t)
	for _, key := range []string{"MENU_A", "MENU_B"} { // same user, same second
		x, err := wecom.BuildEvent(corpID, "lisi", 1000002, fixedNow.Unix(), "click", key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp := e.post(t, "/wecom/helpdesk/callback", e.cr, x, fixedNow); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 2 {
		t.Fatalf("WXHUB_IN has %d messages, want 2", n)
	}
}

func TestCallbackRejections(t *testing.T) {
	e := newEnv(t)
	foreign, _ := wecom.NewCrypter(token, aesKey, "wwforeigncorp")
	otherKey, _ := wecom.NewCrypter(token, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", corpID)
	plain := textXML("zhangsan", "hi", "1")
	stamp := strconv.FormatInt(fixedNow.Unix(), 10)
	good, sig, _ := e.cr.EncryptCallback(plain, stamp, "n")
	big := bytes.Repeat([]byte("x"), 8192)
	tests := []struct {
		name string
		do   func() *http.Response
		want int
	}{
		{"forged signature", func() *http.Response {
			return e.rawPost(t, "/wecom/helpdesk/callback?msg_signature=0000&timestamp="+stamp+"&nonce=n", good)
		}, 401},
		{"signature of another nonce", func() *http.Response {
			return e.rawPost(t, "/wecom/helpdesk/callback?msg_signature="+sig+"&timestamp="+stamp+"&nonce=other", good)
		}, 401},
		{"foreign corp id", func() *http.Response { return e.post(t, "/wecom/helpdesk/callback", foreign, plain, fixedNow) }, 403},
		{"wrong aes key", func() *http.Response { return e.post(t, "/wecom/helpdesk/callback", otherKey, plain, fixedNow) }, 400},
		{"garbage body", func() *http.Response {
			return e.rawPost(t, "/wecom/helpdesk/callback?msg_signature="+sig+"&timestamp="+stamp+"&nonce=n", []byte("garbage"))
		}, 400},
		{"encrypted garbage xml", func() *http.Response {
			return e.post(t, "/wecom/helpdesk/callback", e.cr, []byte("<xml><MsgType>text"), fixedNow)
		}, 400},
		{"oversized body", func() *http.Response {
			return e.rawPost(t, "/wecom/helpdesk/callback?msg_signature="+sig+"&timestamp="+stamp+"&nonce=n", big)
		}, 413},
		{"stale timestamp (replay)", func() *http.Response {
			return e.post(t, "/wecom/helpdesk/callback", e.cr, plain, fixedNow.Add(-time.Hour))
		}, 400},
		{"missing timestamp", func() *http.Response {
			return e.rawPost(t, "/wecom/helpdesk/callback?msg_signature="+sig+"&nonce=n", good)
		}, 400},
		{"unknown app", func() *http.Response { return e.post(t, "/wecom/nope/callback", e.cr, plain, fixedNow) }, 404},
		{"mp path for a wecom app", func() *http.Response { return e.post(t, "/mp/helpdesk/callback", e.cr, plain, fixedNow) }, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.do().StatusCode; got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 0 {
		t.Fatalf("rejected callbacks stored %d events", n)
	}
}

func TestURLVerification(t *testing.T) {
	e := newEnv(t)
	stamp := strconv.FormatInt(fixedNow.Unix(), 10)
	echo, err := e.cr.Encrypt([]byte("1616140317555161061"))
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"msg_signature": {e.cr.Signature(stamp, "n", echo)}, "timestamp": {stamp}, "nonce": {"n"}, "echostr": {echo}}
	resp, err := http.Get(e.srv.URL + "/wecom/helpdesk/callback?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "1616140317555161061" {
		t.Fatalf("status %d body %q", resp.StatusCode, got)
	}
	q.Set("msg_signature", "bad")
	resp, _ = http.Get(e.srv.URL + "/wecom/helpdesk/callback?" + q.Encode())
	if resp.StatusCode != 401 {
		t.Fatalf("forged verification: status %d", resp.StatusCode)
	}
}

func TestOfficialAccountCallbacks(t *testing.T) {
	e := newEnv(t)
	mp, _ := wecom.NewCrypter(token, aesKey, "wx5823bf96d3bd56c7")
	voice, err := wecom.BuildInbound(schemas.EventData{ToUser: "gh_1", User: "openid-1", CreateTime: fixedNow.Unix(),
		MsgType: "voice", MediaID: "m1", Format: "amr", Recognition: "合同模板", MsgID: "77"})
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.post(t, "/mp/shop/callback", mp, voice, fixedNow); resp.StatusCode != 200 {
		t.Fatalf("mp encrypted: status %d", resp.StatusCode)
	}
	// Plain-text mode: signature over token, timestamp and nonce only.
	stamp := strconv.FormatInt(fixedNow.Unix(), 10)
	sig := plainSig(token, stamp, "n")
	if resp := e.rawPost(t, "/mp/plain/callback?signature="+sig+"&timestamp="+stamp+"&nonce=n", voice); resp.StatusCode != 200 {
		t.Fatalf("mp plain: status %d", resp.StatusCode)
	}
	if resp := e.rawPost(t, "/mp/plain/callback?signature=bad&timestamp="+stamp+"&nonce=n", voice); resp.StatusCode != 401 {
		t.Fatalf("mp plain forged: status %d", resp.StatusCode)
	}
	// Plain text is refused where it is not configured.
	if resp := e.rawPost(t, "/mp/shop/callback?signature="+sig+"&timestamp="+stamp+"&nonce=n", voice); resp.StatusCode != 401 {
		t.Fatalf("plain text on an encrypted account: status %d", resp.StatusCode)
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 2 {
		t.Fatalf("WXHUB_IN has %d, want 2", n)
	}
	s, _ := e.bus.JS().Stream(context.Background(), bus.StreamIn)
	raw, _ := s.GetMsg(context.Background(), 1)
	var ev schemas.Event
	json.Unmarshal(raw.Data, &ev)
	if ev.Data.Recognition != "合同模板" || ev.Data.Channel != "mp" || raw.Subject != "wxhub.in.mp.shop.voice" {
		t.Errorf("mp event %+v on %s", ev.Data, raw.Subject)
	}
}

// plainSig is the plain-text-mode signature: SHA1 of the sorted token, timestamp, nonce.
func plainSig(parts ...string) string { return fmt.Sprintf("%x", sha1Sorted(parts...)) }
