package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		live, floor uint64
		want        int
	}{
		{0, 128 * mib, 100},              // nothing measured yet: the default
		{16 * mib, 128 * mib, 800},       // next start at 16 + 128 MiB
		{32 * mib, 128 * mib, 400},       // 32 + 128
		{64 * mib, 128 * mib, 200},       // 64 + 128: growth by the floor, not to it
		{128 * mib, 128 * mib, 100},      // live reaches the floor: doubling, as usual
		{200 * mib, 128 * mib, 100},      // above the floor: GOGC=100 unchanged
		{1 * mib, 128 * mib, maxPercent}, // capped
	}
	for _, tc := range tests {
		if got := Percent(tc.live, tc.floor); got != tc.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", tc.live/mib, tc.floor/mib, got, tc.want)
		}
	}
}

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestKeepTunesAfterEveryCollectionAndStops(t *testing.T) {
	t.Setenv("GOGC", "")  // the test binary may run with GOGC set
	stop := Keep(1 << 40) // a floor far above this test's heap: the cap applies
	defer stop()
	// The cleanup runs after a collection, on its own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for gogc() != maxPercent {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC after collections = %d, want %d", gogc(), maxPercent)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	stop()
	for gogc() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC after stop = %d, want 100", gogc())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	// Stopped: later collections leave GOGC alone.
	runtime.GC()
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC changed after stop: %d", got)
	}
}

func TestKeepRearmsAcrossCollections(t *testing.T) {
	t.Setenv("GOGC", "")
	k := start(1 << 40)
	defer k.stop()
	tunes := func() int { k.mu.Lock(); defer k.mu.Unlock(); return k.tunes }
	// One tune at start, then one per collection: the keeper re-arms each time.
	deadline := time.Now().Add(10 * time.Second)
	for tunes() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d tunes after repeated collections, want 4", tunes())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

func TestKeepLeavesAnOperatorsGOGC(t *testing.T) {
	t.Setenv("GOGC", "300")
	if Enabled(128 << 20) {
		t.Fatal("Enabled with GOGC set")
	}
	if Enabled(0) {
		t.Setenv("GOGC", "")
		t.Fatal("Enabled with floor 0")
	}
}

// stop restores the GOGC in force before Keep, not Go's default.
func TestStopRestoresThePreviousGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	prev := debug.SetGCPercent(150)
	defer debug.SetGCPercent(prev)
	stop := Keep(1 << 40)
	deadline := time.Now().Add(10 * time.Second)
	for gogc() != maxPercent { // tuned at least once
		if time.Now().After(deadline) {
			t.Fatalf("GOGC while kept = %d, want %d", gogc(), maxPercent)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := gogc(); got != 150 {
		t.Fatalf("GOGC after stop = %d, want the 150 in force before Keep", got)
	}
}
