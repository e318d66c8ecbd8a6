package router

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Loader reads the rules from the config file at path (cmd/wxhub passes one
// that loads the whole config and returns its router section).
type Loader func(path string) (Config, error)

// Reload loads path and swaps the rules in; on any error the old rules stay.
func (r *Router) Reload(path string, load Loader) error {
	cfg, err := load(path)
	if err == nil {
		err = r.SetRules(cfg)
	}
	if err != nil {
		r.m.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("router: reload %s: %w", path, err)
	}
	r.m.reloads.WithLabelValues("ok").Inc()
	return nil
}

// WatchFile reloads the rules when the file at path changes (fsnotify; the
// directory is watched, so editors that save by rename are seen) and on each
// value from reload (the process's SIGHUP; may be nil), until ctx is done. A
// file that fails to load or validate is logged and the old rules stay in
// force. Bursts of events are coalesced.
func (r *Router) WatchFile(ctx context.Context, path string, load Loader, reload <-chan struct{}) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("router: watch %s: %w", path, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("router: watch: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("router: watch %s: %w", filepath.Dir(abs), err)
	}
	const settle = 100 * time.Millisecond // editors write in several steps
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	pending := false
	reloadNow := func(why string) {
		if err := r.Reload(abs, load); err != nil {
			r.log.Error("rules not reloaded; keeping the old ones", zap.String("trigger", why), zap.Error(err))
			return
		}
		r.log.Info("rules reloaded", zap.String("trigger", why), zap.Int("rules", len(r.Rules().Rules)))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
			reloadNow("signal")
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// The first event arms the timer; later ones ride along, so a file
			// rewritten without pause is still reloaded every settle period.
			if filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 && !pending {
				pending = true
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn("file watch error", zap.Error(err))
		case <-timer.C:
			pending = false
			reloadNow("file change")
		}
	}
}
