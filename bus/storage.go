package bus

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// ErrStorage is returned while the embedded server cannot write its store
// (a full disk): callers refuse new work instead of waiting for a timeout.
var ErrStorage = errors.New("bus: JetStream cannot write its store")

// jetStreamOK reports whether JetStream answers and, on the embedded server,
// can write: a full disk either turns JetStream off or leaves a stream with a
// write error that refuses every later write until the stream is reloaded.
func (b *Bus) jetStreamOK(ctx context.Context) error {
	if b.srv != nil {
		if !b.srv.JetStreamEnabled() {
			return fmt.Errorf("%w: JetStream disabled (storage fault?); re-enabling", ErrNotReady)
		}
		if err := b.StorageFault(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, err)
		}
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: JetStream: %w", ErrNotReady, err)
	}
	return nil
}

// StorageFault is non-nil (wrapping ErrStorage) while the embedded server
// cannot write its store; nil on an external cluster, which heals itself.
// Cheap: the check runs in the background every storageCheckEvery.
func (b *Bus) StorageFault() error {
	if msg, _ := b.storageFault.Load().(string); msg != "" {
		return fmt.Errorf("%w: %s", ErrStorage, msg)
	}
	return nil
}

// storageCheckEvery is how often the embedded server's store is checked.
const storageCheckEvery = 2 * time.Second

// writeFault is the embedded server's own health report of a stream that
// failed to write ("" when every stream can write).
func writeFault(srv *server.Server) string {
	h := srv.Healthz(nil)
	if h == nil || h.Status == "ok" || !strings.Contains(h.Error, "write error") {
		return ""
	}
	return h.Error
}

// keepJetStream brings the embedded server's JetStream back after a storage
// fault once the disk has room again, on the same store, and declares the
// streams again: the hub recovers by itself instead of failing every write
// until a restart. A stream's write error is sticky in nats-server, so
// recovery restarts JetStream, which reloads every stream from disk. Runs
// until the bus closes.
func (b *Bus) keepJetStream(running *server.JetStreamConfig) {
	// The running config's StoreDir ends in "jetstream", which EnableJetStream
	// appends again: give it the directory the server was started with.
	jsCfg := *running
	jsCfg.StoreDir = filepath.Dir(running.StoreDir)
	t := time.NewTicker(storageCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		if b.srv.JetStreamEnabled() {
			fault := writeFault(b.srv)
			b.storageFault.Store(fault)
			if fault == "" {
				continue
			}
			if !diskHasRoom(running.StoreDir) {
				b.log.Warn("JetStream cannot write its store; waiting for free space", zap.String("dir", running.StoreDir), zap.String("fault", fault))
				continue
			}
			b.log.Warn("the disk has room again; restarting JetStream to reload the streams", zap.String("fault", fault))
			if err := b.srv.DisableJetStream(); err != nil {
				b.log.Warn("stopping JetStream after a storage fault failed, retrying", zap.Error(err))
				continue
			}
		}
		b.storageFault.Store("JetStream disabled")
		cfg := jsCfg
		if err := b.srv.EnableJetStream(&cfg); err != nil {
			b.log.Warn("JetStream is disabled (storage fault?); re-enabling failed, retrying", zap.Error(err))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		err := b.Declare(ctx)
		cancel()
		if err != nil {
			b.log.Warn("JetStream re-enabled; declaring streams failed, retrying", zap.Error(err))
			continue
		}
		b.storageFault.Store(writeFault(b.srv))
		b.log.Info("JetStream re-enabled on its store after a storage fault")
	}
}
