package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/hub"
)

// runCmd is production mode: the components named by --only (default all) from
// the config file, JSON logs.
func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "wxhub.yaml", "config file")
	only := fs.String("only", "", "comma-separated components: gateway,router,sender,connector:<name> (default all)")
	pprofAddr := fs.String("pprof", "", "serve Go's /debug/pprof on this loopback host:port (off by default; for profiling)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	components, err := hub.ParseOnly(*only)
	if err != nil {
		return err
	}
	setup, err := hub.Load(*cfgPath, hub.Builtins)
	if err != nil {
		return err
	}
	cfg := setup.Config
	log, err := newLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	defer log.Sync()
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("wxhub starting", zap.String("version", version), zap.String("config", *cfgPath),
		zap.Bool("embedded_nats", cfg.NATS.URL == ""), zap.String("only", *only))
	defer hub.KeepGCHeapFloor(cfg, log)()
	err = hub.Run(ctx, setup, log, hub.Options{Only: components, ConfigPath: *cfgPath, Reload: onSIGHUP(ctx)})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("wxhub stopped", zap.Error(err))
		return err
	}
	log.Info("wxhub stopped")
	return nil
}

// onSIGHUP delivers a value for each SIGHUP until ctx is done: the rules reload.
func onSIGHUP(ctx context.Context) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	out := make(chan struct{})
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
