package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// jetStreamOK reports whether JetStream answers and, on the embedded server,
// is still enabled: a server whose disk filled up disables JetStream and
// refuses every write until it is enabled again.
func (b *Bus) jetStreamOK(ctx context.Context) error {
	if b.srv != nil && !b.srv.JetStreamEnabled() {
		return fmt.Errorf("%w: JetStream disabled (storage fault?); re-enabling", ErrNotReady)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: JetStream: %w", ErrNotReady, err)
	}
	return nil
}

// storageCheckEvery is how often the embedded server's JetStream is checked.
const storageCheckEvery = 2 * time.Second

// keepJetStream re-enables the embedded server's JetStream when it turned
// itself off (a full disk: "no space left on device"), on the same store, and
// declares the streams again: the hub recovers by itself once space returns,
// instead of failing every write until a restart. Runs until the bus closes.
func (b *Bus) keepJetStream(dir string) {
	t := time.NewTicker(storageCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		if b.srv.JetStreamEnabled() {
			continue
		}
		err := b.srv.EnableJetStream(&server.JetStreamConfig{StoreDir: dir})
		if err != nil {
			b.log.Warn("JetStream is disabled (storage fault?); re-enabling failed, retrying", zap.Error(err))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		err = b.Declare(ctx)
		cancel()
		if err != nil {
			b.log.Warn("JetStream re-enabled; declaring streams failed, retrying", zap.Error(err))
			continue
		}
		b.log.Info("JetStream re-enabled on its store after a storage fault")
	}
}
