package hub

import (
	"os"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/internal/gcfloor"
)

// DefaultGCHeapFloorMiB is runtime.gc_heap_floor_mib when unset, for a
// process that runs the embedded NATS server; a process on an external
// cluster keeps Go's own pacing. The measurements behind the figure are in
// docs/benchmarks-history.md (2026-12-02).
const DefaultGCHeapFloorMiB = 64

// GCHeapFloor decides the floor, in MiB (0: off), and says why. lookupEnv is
// os.LookupEnv outside tests. The operator's GOGC or GOMEMLIMIT wins over
// everything; then an explicit runtime.gc_heap_floor_mib; then the default,
// for the embedded NATS server only.
func GCHeapFloor(cfg *config.Config, lookupEnv func(string) (string, bool)) (floorMiB uint64, why string) {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		if val, _ := lookupEnv(v); val != "" { // empty is the runtime's default, as unset
			return 0, v + " is set"
		}
	}
	switch {
	case cfg.Runtime.GCHeapFloorMiB != nil:
		return uint64(*cfg.Runtime.GCHeapFloorMiB), "runtime.gc_heap_floor_mib"
	case cfg.NATS.URL == "":
		return DefaultGCHeapFloorMiB, "default with the embedded NATS server"
	default:
		return 0, "external NATS: Go's own pacing"
	}
}

// KeepGCHeapFloor applies GCHeapFloor to this process (see internal/gcfloor)
// and returns what restores the previous setting.
func KeepGCHeapFloor(cfg *config.Config, log *zap.Logger) (stop func()) {
	floor, why := GCHeapFloor(cfg, os.LookupEnv)
	if floor == 0 {
		log.Info("GC heap floor off", zap.String("why", why))
		return func() {}
	}
	log.Info("GC heap floor", zap.Uint64("floor_mib", floor), zap.String("why", why))
	return gcfloor.Keep(floor << 20)
}
