package hub

import (
	"os"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/internal/gcfloor"
)

// DefaultGCHeapFloorMiB is runtime.gc_heap_floor_mib when unset, for a
// process that runs the embedded NATS server; a process on an external
// cluster keeps Go's own pacing. docs/benchmarks.md shows the measurements
// behind the figure.
const DefaultGCHeapFloorMiB = 64

// KeepGCHeapFloor applies runtime.gc_heap_floor_mib to this process (see
// internal/gcfloor) and returns what restores the previous setting. The
// operator's GOGC or GOMEMLIMIT wins: then it does nothing.
func KeepGCHeapFloor(cfg *config.Config, log *zap.Logger) (stop func()) {
	floor := uint64(0)
	if cfg.NATS.URL == "" {
		floor = DefaultGCHeapFloorMiB
	}
	if f := cfg.Runtime.GCHeapFloorMiB; f != nil {
		floor = uint64(*f)
	}
	_, gogc := os.LookupEnv("GOGC")
	_, memlimit := os.LookupEnv("GOMEMLIMIT")
	if floor == 0 || gogc || memlimit {
		log.Info("GC heap floor off", zap.Uint64("floor_mib", floor), zap.Bool("gogc_set", gogc), zap.Bool("gomemlimit_set", memlimit))
		return func() {}
	}
	log.Info("GC heap floor", zap.Uint64("floor_mib", floor))
	return gcfloor.Keep(floor << 20)
}
