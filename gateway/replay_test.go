package gateway_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/wecom"
)

// A request stamped almost a window ahead and replayed just before its stamp
// falls out of the window behind passes the timestamp check twice; the
// duplicate window the config requires (MinDuplicateWindow) must still refuse
// it. Real clocks, short windows: the test lasts about two windows.
func TestReplayAtTheEdgeOfTheTimestampWindowIsADuplicate(t *testing.T) {
	cfg := testConfig()
	cfg.TimestampWindow = 2 * time.Second
	cfg.ClockSkew = 500 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := bustest.Open(t, bus.Config{DuplicateWindow: cfg.MinDuplicateWindow()})
	g, err := gateway.New(*cfg, b, zap.NewNop(), gateway.WithRegistry(prometheus.NewRegistry()))
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
	e := &env{srv: srv, bus: b, cfg: cfg, cr: cr}

	// Stamped window-ε ahead of now (whole seconds, as WeChat stamps).
	now := time.Now()
	stamp := now.Truncate(time.Second).Add(cfg.TimestampWindow)
	if stamp.Sub(now) > cfg.TimestampWindow-100*time.Millisecond {
		stamp = stamp.Add(-time.Second)
	}
	plain := textXML("zhangsan", "订单 1001", "7001000000000000001")
	if resp := e.post(t, "/wecom/helpdesk/callback", cr, plain, stamp); resp.StatusCode != 200 {
		t.Fatalf("first receipt: status %d", resp.StatusCode)
	}
	// Replayed when the stamp is just inside the window behind now.
	replayAt := stamp.Add(cfg.TimestampWindow - 300*time.Millisecond)
	time.Sleep(time.Until(replayAt)) // the edge is a wall-clock instant: the gateway and JetStream both read real time
	if resp := e.post(t, "/wecom/helpdesk/callback", cr, plain, stamp); resp.StatusCode != 200 {
		t.Fatalf("replay: status %d (the timestamp check should still pass; the duplicate window refuses it silently)", resp.StatusCode)
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 1 {
		t.Fatalf("WXHUB_IN has %d messages after the replay %s after the first receipt, want 1 (duplicate window %s)",
			n, replayAt.Sub(now).Round(time.Millisecond), cfg.MinDuplicateWindow())
	}
}
