// Package gcfloor keeps the Go collector from starting before the heap has
// grown by a floor since the last collection, like the GC tuners of large Go
// services: once the live heap exceeds the floor the usual rule (GOGC=100:
// collect when the heap doubles) applies unchanged.
//
// Why: a hub holds little live but allocates at the message rate, so with
// GOGC=100 it collects several times a second under load, and every mark
// phase is a burst of latency. A floor spaces them out while memory stays
// bounded: the heap never exceeds live + max(floor, live).
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// maxPercent caps GOGC while the live heap is tiny (a floor of 128 MiB over
// 1 MiB live would otherwise ask for 12,800%).
const maxPercent = 1000

// Percent is the GOGC that makes the next collection start once the heap has
// grown by max(floor, live) over the live heap: floor / live, as a
// percentage, while live is under the floor; 100 from there on.
//
// Growth by the floor rather than a total of the floor: with a live heap near
// the floor, a total would leave little to allocate between collections.
func Percent(live, floor uint64) int {
	if live == 0 || live >= floor {
		return 100
	}
	return min(maxPercent, int(floor*100/live))
}

// Enabled reports whether Keep would tune: not when the operator set GOGC or
// GOMEMLIMIT (their choice stands, "off" included) or when floor is 0.
func Enabled(floor uint64) bool {
	return floor > 0 && os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
}

// Keep sets GOGC after every collection from the live heap it left, until stop
// is called; stop restores the GOGC in force before. Without Enabled it does nothing.
func Keep(floor uint64) (stop func()) {
	if !Enabled(floor) {
		return func() {}
	}
	return start(floor).stop
}

func start(floor uint64) *keeper {
	prev := debug.SetGCPercent(100)
	debug.SetGCPercent(prev)
	k := &keeper{floor: floor, prev: prev, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	k.tune()
	k.arm()
	return k
}

func (k *keeper) stop() {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	debug.SetGCPercent(k.prev)
}

type keeper struct {
	floor uint64
	prev  int // GOGC before Keep

	mu      sync.Mutex
	stopped bool
	sample  []metrics.Sample
	percent int
	tunes   int // collections seen, for tests
}

// arm leaves an object for the next collection to find unreachable; its
// cleanup runs after that collection, tunes and arms again.
func (k *keeper) arm() {
	runtime.AddCleanup(new([16]byte), func(k *keeper) {
		k.mu.Lock()
		stopped := k.stopped
		k.mu.Unlock()
		if stopped {
			return
		}
		k.tune()
		k.arm()
	}, k)
}

func (k *keeper) tune() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	k.tunes++
	metrics.Read(k.sample)
	var live uint64
	if k.sample[0].Value.Kind() == metrics.KindUint64 {
		live = k.sample[0].Value.Uint64()
	}
	if p := Percent(live, k.floor); p != k.percent {
		debug.SetGCPercent(p)
		k.percent = p
	}
}
