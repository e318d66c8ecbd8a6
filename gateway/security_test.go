package gateway_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/schemas"
)

func (e *env) status(t *testing.T, key, id string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/messages/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	return doJSON(t, req)
}

// A message's status is the sending key's (and an admin's) only, even for
// another key of the same app; and its id cannot be derived from the dedup key.
func TestMessageStatusIsReadableOnlyByItsSender(t *testing.T) {
	cfg := testConfig()
	cfg.API.Keys = append(cfg.API.Keys,
		gateway.APIKey{Name: "crm", Key: "crm-key-123456", Apps: []string{"helpdesk"}},
		gateway.APIKey{Name: "ops", Key: "ops-key-123456", Apps: []string{"helpdesk"}, Admin: true})
	e := startEnv(t, cfg)
	body := `{"app":"helpdesk","touser":"zhangsan","msgtype":"text","text":{"content":"x"},"dedup_key":"payslip-1"}`
	code, acc := e.push(t, apiKey, body)
	if code != 202 {
		t.Fatalf("push: %d %v", code, acc)
	}
	id := acc["id"].(string)
	tests := []struct {
		name, key string
		want      int
	}{
		{"sender", apiKey, 200},
		{"other key of the same app", "crm-key-123456", 404},
		{"key of every app", "all-apps-key-1", 404},
		{"admin key", "ops-key-123456", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, st := e.status(t, tt.key, id); code != tt.want {
				t.Fatalf("status %d %v, want %d", code, st, tt.want)
			}
		})
	}
	// The old derivation: "m" + hex(sha256(client \0 dedup_key)[:12]).
	sum := sha256.Sum256([]byte("erp\x00payslip-1"))
	if guess := "m" + hex.EncodeToString(sum[:12]); strings.HasPrefix(id, guess) || id == guess {
		t.Fatalf("id %s is derived from the dedup key", id)
	}
	// The dedup key still dedupes, per client: the same key from crm is a new message.
	if _, again := e.push(t, apiKey, body); again["id"] != id {
		t.Fatalf("repeated dedup key gave %v, want %s", again["id"], id)
	}
	if _, other := e.push(t, "crm-key-123456", body); other["id"] == id {
		t.Fatal("another client's dedup key mapped to the same message")
	}
	if n := e.streamMsgs(t, bus.StreamOut); n != 2 {
		t.Fatalf("WXHUB_OUT has %d, want 2", n)
	}
	// A dedup record is not a message.
	kv, _ := e.bus.KV(context.Background(), bus.BucketStatus)
	keys, _ := kv.Keys(context.Background())
	for _, k := range keys {
		if strings.HasPrefix(k, "dedup_") {
			if code, _ := e.status(t, "ops-key-123456", k); code != 404 {
				t.Fatalf("dedup record %s readable as a message: %d", k, code)
			}
		}
	}
	// The sender keeps the owner when it rewrites the record.
	ent, _ := kv.Get(context.Background(), id)
	var st schemas.MessageStatus
	json.Unmarshal(ent.Value(), &st)
	if st.Client != "erp" {
		t.Fatalf("status record client %q, want erp", st.Client)
	}
}

// Undeliverable or padded bodies are refused with 400 naming the field, not
// accepted and failed later.
func TestPushRefusesUndeliverableBodies(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 64 << 10
	e := startEnv(t, cfg)
	users := func(n int) string {
		u := make([]string, n)
		for i := range u {
			u[i] = "u" + string(rune('a'+i%26)) + strings.Repeat("x", i%7)
		}
		return strings.Join(u, "|")
	}
	parties := func(n int) string { return strings.TrimSuffix(strings.Repeat("1|", n), "|") }
	msg := func(extra string) string {
		return `{"app":"helpdesk","msgtype":"text","text":{"content":"x"}` + extra + `}`
	}
	tests := []struct {
		name, body string
		want       int
		wantField  string
	}{
		{"empty touser", msg(`,"touser":""`), 400, "touser"},
		{"bar only", msg(`,"touser":"|"`), 400, "touser"},
		{"empty item", msg(`,"touser":"a||b"`), 400, "touser"},
		{"trailing bar", msg(`,"touser":"a|"`), 400, "touser"},
		{"1001 users", msg(`,"touser":"` + users(1001) + `"`), 400, "touser"},
		{"1000 users", msg(`,"touser":"` + users(1000) + `"`), 202, ""},
		{"101 parties", msg(`,"toparty":"` + parties(101) + `"`), 400, "toparty"},
		{"100 tags", msg(`,"totag":"` + parties(100) + `"`), 202, ""},
		{"empty toparty item", msg(`,"touser":"a","toparty":"1||2"`), 400, "toparty"},
		{"empty touser beside a party", msg(`,"touser":"","toparty":"2"`), 202, ""},
		{"@all mixed", msg(`,"touser":"@all|a"`), 400, "touser"},
		{"unknown field", msg(`,"touser":"a","padding":"` + strings.Repeat("x", 2000) + `"`), 400, "padding"},
		{"every documented option", msg(`,"touser":"a","safe":0,"enable_id_trans":0,"enable_duplicate_check":0,"duplicate_check_interval":1800`), 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.push(t, apiKey, tt.body)
			if code != tt.want {
				t.Fatalf("status %d (%v), want %d", code, body, tt.want)
			}
			if tt.wantField != "" && body["field"] != tt.wantField {
				t.Fatalf("field %v, want %q (%v)", body["field"], tt.wantField, body)
			}
		})
	}
}

// The drop-in endpoint drops the fields WeCom does not know (its SDKs send
// extras WeCom ignores) instead of forwarding them to WeCom.
func TestDropInDropsUnknownFields(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.srv.URL+"/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+apiKey, nil)
	_, tok := doJSON(t, req)
	body := `{"agentid":1000002,"touser":"zhangsan","msgtype":"text","text":{"content":"hi"},"padding":"` + strings.Repeat("x", 1000) + `"}`
	req, _ = http.NewRequest("POST", e.srv.URL+"/cgi-bin/message/send?access_token="+tok["access_token"].(string), strings.NewReader(body))
	if _, m := doJSON(t, req); m["errcode"] != float64(0) {
		t.Fatalf("send: %v", m)
	}
	s, _ := e.bus.JS().Stream(context.Background(), bus.StreamOut)
	raw, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var out schemas.Outbound
	json.Unmarshal(raw.Data, &out)
	if strings.Contains(string(out.Data.Body), "padding") || !strings.Contains(string(out.Data.Body), "zhangsan") {
		t.Fatalf("forwarded body %s", out.Data.Body)
	}
}

// With WithoutMetrics the callback port serves no /metrics (a separate,
// private listener does); without it, /metrics stays where it was.
func TestWithoutMetricsKeepsMetricsOffTheCallbackPort(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []gateway.Option
		want int
	}{
		{"default", nil, http.StatusOK},
		{"without metrics", []gateway.Option{gateway.WithoutMetrics()}, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			b := bustest.Open(t, bus.Config{})
			g, err := gateway.New(*cfg, b, zap.NewNop(), append(tt.opts, gateway.WithRegistry(prometheus.NewRegistry()))...)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(g.Handler())
			defer srv.Close()
			res, err := http.Get(srv.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Fatalf("GET /metrics: %d, want %d", res.StatusCode, tt.want)
			}
		})
	}
}

// A forged 1 MiB envelope of 260k elements is refused (400, malformed) after
// reading at most a few dozen of them, before the signature is checked.
func TestCallbackRefusesAHugeForgedEnvelope(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 2 << 20
	e := startEnv(t, cfg)
	body := "<xml><Encrypt>abc</Encrypt>" + strings.Repeat("<a/>", 260_000) + "</xml>"
	stamp := strconv.FormatInt(fixedNow.Unix(), 10)
	resp := e.rawPost(t, "/wecom/helpdesk/callback?msg_signature=forged&timestamp="+stamp+"&nonce=n", []byte(body))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 0 {
		t.Fatalf("WXHUB_IN has %d messages", n)
	}
}
