package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/wecom"
)

// BenchmarkCallback is one WeCom callback through the gateway's handler:
// signature, decryption, parsing, JSON encoding, publish to WXHUB_IN and the
// wait for JetStream's ack (embedded server, file storage). No network between
// client and handler, so this is the gateway's own cost per callback.
func BenchmarkCallback(b *testing.B) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bs, err := bus.Open(ctx, bus.Config{DataDir: b.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	g, err := gateway.New(*cfg, bs, zap.NewNop(), gateway.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	h := g.Handler()
	cr, err := wecom.NewCrypter(token, aesKey, corpID)
	if err != nil {
		b.Fatal(err)
	}
	// Distinct MsgIds, encrypted ahead: the loop measures the gateway only
	// (past 20,000 iterations MsgIds repeat and JetStream answers duplicates).
	type req struct {
		target string
		body   []byte
	}
	const pool = 20000
	reqs := make([]req, pool)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	base := time.Now().UnixNano()
	for i := range reqs {
		plain, err := wecom.BuildText(corpID, "u0001", 1000002, time.Now().Unix(), "echo 订单 1001", strconv.FormatInt(base+int64(i), 10))
		if err != nil {
			b.Fatal(err)
		}
		body, sig, err := cr.EncryptCallbackAgent(plain, ts, "1234567890", "1000002")
		if err != nil {
			b.Fatal(err)
		}
		q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {"1234567890"}}
		reqs[i] = req{"/wecom/helpdesk/callback?" + q.Encode(), body}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%pool]
		i++
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, r.target, bytes.NewReader(r.body)))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	}
}
