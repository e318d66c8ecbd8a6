package gateway_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// answerer plays a connector: it answers every event on WXHUB_IN's Official
// Account subjects with text after delay, as the SDK runner publishes replies.
func answerer(t *testing.T, e *env, text string, delay time.Duration) {
	t.Helper()
	sub, err := e.bus.Conn().Subscribe("wxhub.in.mp.>", func(m *nats.Msg) {
		var ev schemas.Event
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		go func() {
			time.Sleep(delay) // the connector's work; the gateway's wait is what is tested
			body, _ := json.Marshal(map[string]any{"touser": ev.Data.User, "msgtype": "text", "text": map[string]string{"content": text}})
			out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: ev.ID + "/0", Source: "connector/test", Type: "wxhub.out.message",
				Time: time.Now(), DataContentType: "application/json",
				Data: schemas.OutboundData{App: ev.Data.App, Kind: schemas.KindMessage, InReplyTo: ev.ID, Body: body}}
			e.bus.PublishJSON(context.Background(), bus.OutSubject(ev.Data.App), out.ID, schemas.SchemaOutbound, out)
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
}

// sayMP posts an encrypted text callback as WeChat does in safe mode and
// returns the decrypted passive reply ("" for "success").
func sayMP(t *testing.T, e *env, openid, text, msgID string) (reply string, took time.Duration) {
	t.Helper()
	cr, _ := wecom.NewCrypter(token, aesKey, mpAppID)
	x, _ := wecom.BuildInbound(schemas.EventData{ToUser: "gh_svc", User: openid, CreateTime: fixedNow.Unix(), MsgType: "text", Content: text, MsgID: msgID})
	stamp := strconv.FormatInt(fixedNow.Unix(), 10)
	body, sig, err := cr.EncryptCallback(x, stamp, "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"msg_signature": {sig}, "signature": {plainSig(token, stamp, "nonce1")}, "timestamp": {stamp},
		"nonce": {"nonce1"}, "encrypt_type": {"aes"}, "openid": {openid}}
	start := time.Now()
	resp, err := http.Post(e.srv.URL+"/mp/service/callback?"+q.Encode(), "text/xml", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took = time.Since(start)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, raw)
	}
	if string(raw) == "success" {
		return "", took
	}
	var env struct{ MsgSignature, TimeStamp, Nonce string }
	if err := xml.Unmarshal(raw, &env); err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	plain, err := cr.Decrypt(env.MsgSignature, env.TimeStamp, env.Nonce, raw)
	if err != nil {
		t.Fatalf("passive reply does not decrypt: %v", err)
	}
	d, err := wecom.ParseInbound(plain)
	if err != nil || d.MsgType != "text" || d.User != "gh_svc" || d.ToUser != openid {
		t.Fatalf("passive reply %s: %+v %v", plain, d, err)
	}
	return d.Content, took
}

func passiveRecord(t *testing.T, e *env, eventID string) bus.PassiveRecord {
	t.Helper()
	kv, _ := e.bus.MPPassiveKV(context.Background())
	en, err := kv.Get(context.Background(), bus.PassiveKey(eventID))
	if err != nil {
		t.Fatal(err)
	}
	var rec bus.PassiveRecord
	json.Unmarshal(en.Value(), &rec)
	return rec
}

func TestPassiveReply(t *testing.T) {
	t.Run("answered in time", func(t *testing.T) {
		cfg := mpConfig()
		cfg.PassiveReplyWait = 3 * time.Second
		e := startEnv(t, cfg)
		answerer(t, e, "您好，请问要查询订单吗？", 0)
		reply, _ := sayMP(t, e, "oCust1", "在吗", "9001")
		if reply != "您好，请问要查询订单吗？" {
			t.Fatalf("passive reply %q", reply)
		}
		if rec := passiveRecord(t, e, "mp-service-9001"); rec.State != bus.PassivePassive || rec.OutboundID != "mp-service-9001/0" {
			t.Fatalf("record %+v", rec)
		}
		// WeChat's retry of the same callback gets the same answer, and no second event.
		if reply, _ := sayMP(t, e, "oCust1", "在吗", "9001"); reply != "您好，请问要查询订单吗？" {
			t.Fatalf("retry answered %q", reply)
		}
		if n := e.streamMsgs(t, bus.StreamIn); n != 1 {
			t.Fatalf("WXHUB_IN has %d, want 1", n)
		}
	})
	t.Run("too late: success, released to the sender", func(t *testing.T) {
		cfg := mpConfig()
		cfg.PassiveReplyWait = 300 * time.Millisecond
		e := startEnv(t, cfg)
		answerer(t, e, "稍后回复", time.Second)
		reply, took := sayMP(t, e, "oCust2", "在吗", "9002")
		if reply != "" || took > 2*time.Second {
			t.Fatalf("answered %q after %s, want success within the budget", reply, took)
		}
		if rec := passiveRecord(t, e, "mp-service-9002"); rec.State != bus.PassiveReleased {
			t.Fatalf("record %+v, want released", rec)
		}
	})
}

// An event that could not be stored leaves no passive-reply record: WeChat's
// retry of the callback waits for its reply afresh.
func TestPassiveReplyEventNotStored(t *testing.T) {
	cfg := mpConfig()
	cfg.PassiveReplyWait = 3 * time.Second
	cfg.PublishTimeout = 500 * time.Millisecond
	e := startEnv(t, cfg)
	if err := e.bus.JS().DeleteStream(context.Background(), bus.StreamIn); err != nil {
		t.Fatal(err)
	}
	cr, _ := wecom.NewCrypter(token, aesKey, mpAppID)
	x, _ := wecom.BuildInbound(schemas.EventData{ToUser: "gh_svc", User: "oLost", CreateTime: fixedNow.Unix(), MsgType: "text", Content: "在吗", MsgID: "9100"})
	if resp := e.post(t, "/mp/service/callback", cr, x, fixedNow); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	kv, _ := e.bus.MPPassiveKV(context.Background())
	if en, err := kv.Get(context.Background(), bus.PassiveKey("mp-service-9100")); err == nil {
		t.Fatalf("record left: %s", en.Value())
	}
}
