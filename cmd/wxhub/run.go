package main

import (
	"context"
	"errors"
	"flag"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/internal/gcfloor"
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
	components, err := parseOnly(*only)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
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
	defer keepGCHeapFloor(cfg, log)()
	err = runHub(ctx, cfg, log, hubOptions{only: components, configPath: *cfgPath})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("wxhub stopped", zap.Error(err))
		return err
	}
	log.Info("wxhub stopped")
	return nil
}

// keepGCHeapFloor applies runtime.gc_heap_floor_mib to this process (see
// internal/gcfloor) and returns what undoes it.
func keepGCHeapFloor(cfg *config.Config, log *zap.Logger) (stop func()) {
	floor := uint64(config.DefaultGCHeapFloorMiB)
	if f := cfg.Runtime.GCHeapFloorMiB; f != nil {
		floor = uint64(*f)
	}
	if !gcfloor.Enabled(floor << 20) {
		log.Info("GC heap floor off", zap.Uint64("floor_mib", floor), zap.Bool("gogc_set", floor > 0))
		return func() {}
	}
	log.Info("GC heap floor", zap.Uint64("floor_mib", floor))
	return gcfloor.Keep(floor << 20)
}
