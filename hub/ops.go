package hub

import (
	"context"
	"fmt"
	"net"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/opsserver"
)

// startOps serves this process's /metrics, /healthz and /readyz on
// metrics.listen when set: a router, sender or connector process has no
// gateway to serve them. Ready means connected to NATS with the components
// started (JetStream able to write, when this process declares streams).
func startOps(ctx context.Context, r *run) (func(), error) {
	addr := r.setup.Config.Metrics.Listen
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	ready := func(ctx context.Context) error {
		if !r.bus.Conn().IsConnected() {
			return fmt.Errorf("%w: NATS %s", bus.ErrNotReady, r.bus.Conn().Status())
		}
		return nil
	}
	r.hub.MetricsAddr = ln.Addr().String()
	r.group.Go(func() error { return opsserver.Serve(ctx, ln, opsserver.Handler(r.reg, ready)) })
	r.log.Info("metrics listening", zap.String("addr", r.hub.MetricsAddr))
	return nil, nil
}
