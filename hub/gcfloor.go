package hub

import (
	"math"
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/internal/gcfloor"
)

// DefaultGCHeapFloorMiB is runtime.gc_heap_floor_mib when unset, for a
// process that runs the embedded NATS server; a process on an external
// cluster keeps Go's own pacing. The measurements behind the figure are in
// docs/benchmarks-history.md (2026-12-02).
const DefaultGCHeapFloorMiB = 64

// DefaultMemoryLimitMiB is runtime.memory_limit_mib when unset, for a process
// that runs the embedded NATS server: with the floor it holds `wxhub run` at
// 1,000 msg/s under 200 MiB resident (docs/benchmarks-history.md, 2026-12-03).
const DefaultMemoryLimitMiB = 160

// GCHeapFloor decides the floor, in MiB (0: off), and says why. lookupEnv is
// os.LookupEnv outside tests. The operator's GOGC or GOMEMLIMIT wins over
// everything; then an explicit runtime.gc_heap_floor_mib; then the default,
// for the embedded NATS server only.
func GCHeapFloor(cfg *config.Config, lookupEnv func(string) (string, bool)) (floorMiB uint64, why string) {
	return runtimeSetting(cfg, lookupEnv, cfg.Runtime.GCHeapFloorMiB, "runtime.gc_heap_floor_mib", DefaultGCHeapFloorMiB, "external NATS: Go's own pacing")
}

// MemoryLimit decides the soft memory limit, in MiB (0: none), and says why,
// by the same precedence as GCHeapFloor.
func MemoryLimit(cfg *config.Config, lookupEnv func(string) (string, bool)) (limitMiB uint64, why string) {
	return runtimeSetting(cfg, lookupEnv, cfg.Runtime.MemoryLimitMiB, "runtime.memory_limit_mib", DefaultMemoryLimitMiB, "external NATS: no limit")
}

// runtimeSetting is the precedence both settings follow: the operator's GOGC
// or GOMEMLIMIT (the setting off), then the config key, then the default for
// a process with the embedded NATS server (none on an external cluster).
func runtimeSetting(cfg *config.Config, lookupEnv func(string) (string, bool), set *int, key string, def uint64, externalWhy string) (uint64, string) {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		if val, _ := lookupEnv(v); val != "" { // empty is the runtime's default, as unset
			return 0, v + " is set"
		}
	}
	switch {
	case set != nil:
		return uint64(*set), key
	case cfg.NATS.URL == "":
		return def, "default with the embedded NATS server"
	default:
		return 0, externalWhy
	}
}

// KeepGCHeapFloor applies GCHeapFloor and MemoryLimit to this process (see
// internal/gcfloor) and returns what restores the previous settings.
func KeepGCHeapFloor(cfg *config.Config, log *zap.Logger) (stop func()) {
	restoreLimit := func() {}
	if limit, why := MemoryLimit(cfg, os.LookupEnv); limit > 0 {
		prev := debug.SetMemoryLimit(int64(limit) << 20)
		restoreLimit = func() { debug.SetMemoryLimit(prev) }
		log.Info("Go memory limit", zap.Uint64("limit_mib", limit), zap.String("why", why))
	} else if prev := debug.SetMemoryLimit(-1); prev == math.MaxInt64 {
		log.Info("Go memory limit off", zap.String("why", why))
	}
	floor, why := GCHeapFloor(cfg, os.LookupEnv)
	if floor == 0 {
		log.Info("GC heap floor off", zap.String("why", why))
		return restoreLimit
	}
	log.Info("GC heap floor", zap.Uint64("floor_mib", floor), zap.String("why", why))
	stopFloor := gcfloor.Keep(floor << 20)
	return func() { stopFloor(); restoreLimit() }
}
