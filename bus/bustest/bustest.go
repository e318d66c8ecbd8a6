// Package bustest starts the real embedded NATS server for tests: one call
// instead of a set-up copied into every package's tests.
package bustest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// Open starts an embedded NATS server with JetStream in a temp dir on a free
// port (cfg's zero DataDir and Port), declares the streams and buckets, and
// closes it when the test ends. Server logs at warn and above go to t.Log.
func Open(t testing.TB, cfg bus.Config) *bus.Bus {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Port == 0 && cfg.URL == "" {
		cfg.Port = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("bus"))
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Outbound returns every message in WXHUB_OUT, in stream order.
func Outbound(t testing.TB, b *bus.Bus) []schemas.Outbound {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []schemas.Outbound
	for raw, err := range b.ReadStream(ctx, bus.StreamOut, bus.SubjectOutAll, 0) {
		if err != nil {
			t.Fatalf("bustest: read %s: %v", bus.StreamOut, err)
		}
		var o schemas.Outbound
		if err := json.Unmarshal(raw.Data, &o); err != nil {
			t.Fatalf("bustest: %s seq %d: %v", bus.StreamOut, raw.Sequence, err)
		}
		out = append(out, o)
	}
	return out
}
