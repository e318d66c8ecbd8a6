package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Settling between phases: a phase that follows another should not pay for
// its leftovers. The ingest phase ends with hundreds of MiB of prepared
// callbacks on this process's heap, and a phase's child hub may still be
// exiting when the next begins. Alternating runs did not show the 1,000/s e2e
// step doing worse after ingest than alone (p99 13-25 ms against 6-20 ms, as
// noisy as this machine is), so this is hygiene, not a correction: each phase
// starts with this process's heap collected and the CPUs quiet.
const (
	settleQuietBusy = 0.15                   // all CPUs together at most this busy ...
	settleWindow    = 500 * time.Millisecond // ... over one window
	settleMax       = 20 * time.Second
)

// cpuTimes is the first ("cpu") line of /proc/stat: busy and total jiffies.
type cpuTimes struct{ busy, total uint64 }

// parseProcStat reads the aggregate cpu line of /proc/stat.
func parseProcStat(data string) (cpuTimes, error) {
	line, _, _ := strings.Cut(data, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}, errors.New("bench: /proc/stat: no aggregate cpu line")
	}
	var t cpuTimes
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("bench: /proc/stat field %d: %w", i+1, err)
		}
		t.total += v
		// user nice system idle iowait irq softirq steal ...: idle and iowait
		// are not work; guest time is already counted in user.
		if i != 3 && i != 4 && i < 8 {
			t.busy += v
		}
	}
	return t, nil
}

// busyShare is how busy the CPUs were between two readings, 0..1.
func busyShare(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}

func readCPUTimes() (cpuTimes, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseProcStat(string(raw))
}

// settle frees what the previous phase left on this process's heap and waits,
// at most settleMax, for the machine to be quiet. Where /proc/stat cannot be
// read it only collects.
func (o *Options) settle(ctx context.Context, phase string) {
	start := time.Now()
	runtime.GC()
	debug.FreeOSMemory()
	prev, err := readCPUTimes()
	if err != nil {
		return
	}
	share := 1.0
	for time.Since(start) < settleMax {
		select {
		case <-ctx.Done():
			return
		case <-time.After(settleWindow):
		}
		cur, err := readCPUTimes()
		if err != nil {
			return
		}
		share, prev = busyShare(prev, cur), cur
		if share <= settleQuietBusy {
			o.progressf(phase, "settled in %s (CPUs %.0f%% busy)", time.Since(start).Round(100*time.Millisecond), share*100)
			return
		}
	}
	o.progressf(phase, "not quiet after %s (CPUs %.0f%% busy); starting anyway", settleMax, share*100)
}
