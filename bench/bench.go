// Package bench measures the hub against its ceiling (`wxhub-bench run`,
// `make bench`): gateway ingest next to a plain net/http handler in the same run,
// end-to-end latency at fixed offered rates and the highest rate sustained, the
// outbound queue against WeCom's limits, and the CPU and memory of `wxhub run`.
// Each phase starts its own simulator and hub on loopback with a fresh data
// directory, and is bounded in time; the whole default run takes about four
// minutes. The result is a markdown report (docs/benchmarks.md).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

// ErrConfig wraps option errors.
var ErrConfig = errors.New("bench: invalid options")

// Phase names.
const (
	PhaseIngest   = "ingest"
	PhaseE2E      = "e2e"
	PhaseOutbound = "outbound"
	PhaseCost     = "cost"
)

// AllPhases in the order they run.
var AllPhases = []string{PhaseIngest, PhaseE2E, PhaseOutbound, PhaseCost}

// Options of a bench run. Zero values take the defaults noted.
type Options struct {
	// Hub starts an in-process hub. Required for ingest, e2e and outbound.
	Hub HubFunc
	// Binary is the wxhub executable the cost phase runs as a child process.
	// Default ./bin/wxhub.
	Binary string
	// Phases to run. Default AllPhases.
	Phases []string
	// Users in the simulated corp for the e2e phase (u00001...). Default 10000:
	// WeCom lets one member receive 30 messages a minute, so R msg/s needs at
	// least 2R members writing; the default covers 5,000 msg/s.
	Users int
	// IngestDuration of each ingest run (baseline, then gateway). Default 10s.
	IngestDuration time.Duration
	// IngestConcurrency: requests in flight during ingest. Default 64.
	IngestConcurrency int
	// Rates offered in the e2e phase, msg/s, in increasing order; the phase
	// stops at the first rate not sustained. Default 200, 500, 1000, 2000, 3000, 4000.
	Rates []float64
	// AllRates: the e2e phase offers every rate even after one is not
	// sustained (to compare settings on a busy machine).
	AllRates bool
	// StepDuration of each e2e rate. Default 10s.
	StepDuration time.Duration
	// Grace after a step for the last replies. Default 5s.
	Grace time.Duration
	// OutboundBulk: bulk messages queued ahead of the urgent ones. Default 10000.
	OutboundBulk int
	// CostIdle and CostLoad: how long the cost phase watches the idle and the
	// loaded child; CostRate is the load. Defaults 10s, 45s, 300 msg/s (a rate
	// the hub sustains). 45s: at 300/s the heap takes ~20s to grow by the GC
	// heap floor, and a load shorter than two collections shows only the first
	// fill, not where memory levels off.
	CostIdle, CostLoad time.Duration
	CostRate           float64
	// CPUProfile, when set, receives a CPU profile of the in-process phases.
	CPUProfile string
	// ChildGCFloorMiB, when set, is runtime.gc_heap_floor_mib in the child
	// `wxhub run`'s config (nil: the binary's default), to compare floors.
	ChildGCFloorMiB *int
	// NATSCommand, when set, runs a NATS server in a process of its own (with
	// --port and --data-dir appended; `wxhub-bench nats`) for each child `wxhub
	// run`, which then connects to it as to an external cluster.
	NATSCommand []string
	// ChildPprof, when set, is passed to the child `wxhub run` as --pprof.
	ChildPprof string
	// ChildStderr, when set, receives the child `wxhub run`'s standard error
	// (each child of the run in turn, appended), e.g. GODEBUG=gctrace=1 lines.
	ChildStderr string
	// Latencies, when set, receives one line per e2e reply: offered rate, due
	// time (Unix µs) and latency (µs), to see when the slow ones came.
	Latencies string
	// InProcess runs the e2e phase's hub in this process (Hub) instead of as a
	// `wxhub run` child (Binary): for a CPU profile of it (ChildPprof profiles
	// the child).
	InProcess bool
	// TempDir for data directories. Default the system's.
	TempDir string
	// Command is how the run was started, for the report.
	Command string
	// Progress receives progress lines. Default os.Stderr.
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Binary == "" {
		o.Binary = "./bin/wxhub"
	}
	if len(o.Phases) == 0 {
		o.Phases = AllPhases
	}
	if o.Users == 0 {
		o.Users = 10000
	}
	if o.IngestDuration == 0 {
		o.IngestDuration = 10 * time.Second
	}
	if o.IngestConcurrency == 0 {
		o.IngestConcurrency = 64
	}
	if len(o.Rates) == 0 {
		o.Rates = []float64{200, 500, 1000, 2000, 3000, 4000}
	}
	if o.StepDuration == 0 {
		o.StepDuration = 10 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	if o.OutboundBulk == 0 {
		o.OutboundBulk = 10000
	}
	if o.CostIdle == 0 {
		o.CostIdle = 10 * time.Second
	}
	if o.CostLoad == 0 {
		o.CostLoad = 45 * time.Second
	}
	if o.CostRate == 0 {
		o.CostRate = 300
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
}

func (o *Options) validate() error {
	for _, p := range o.Phases {
		switch p {
		case PhaseIngest, PhaseE2E, PhaseOutbound:
			if o.Hub == nil {
				return fmt.Errorf("%w: phase %s needs a HubFunc", ErrConfig, p)
			}
		case PhaseCost:
		default:
			return fmt.Errorf("%w: phases: unknown phase %q (%s)", ErrConfig, p, strings.Join(AllPhases, ", "))
		}
	}
	for i, r := range o.Rates {
		if r <= 0 || (i > 0 && r <= o.Rates[i-1]) {
			return fmt.Errorf("%w: rates: must be positive and increasing, got %v", ErrConfig, o.Rates)
		}
	}
	if o.Users < 1 || o.OutboundBulk < 1 {
		return fmt.Errorf("%w: users and outbound bulk must be positive", ErrConfig)
	}
	return nil
}

// Run runs the phases in order and returns the report; a phase that fails is
// reported as failed and the others still run. ctx ending stops the run.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	rep := &Report{Machine: DescribeMachine(), Date: time.Now(), Command: o.Command}
	start := time.Now()
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var errs []error
	for i, p := range o.Phases {
		if ctx.Err() != nil {
			break
		}
		if i > 0 {
			o.settle(ctx, p)
		}
		load := LoadAverage()
		rep.Loads = append(rep.Loads, PhaseLoad{Phase: p, Before: load})
		o.progressf(p, "start (load average %s)", load)
		t := time.Now()
		var err error
		switch p {
		case PhaseIngest:
			err = runIngest(ctx, &o, rep)
		case PhaseE2E:
			err = runE2E(ctx, &o, rep)
		case PhaseOutbound:
			err = runOutbound(ctx, &o, rep)
		case PhaseCost:
			err = runCost(ctx, &o, rep)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			rep.Rows = append(rep.Rows, Row{Area: p, Measure: "phase", Result: "failed: " + err.Error()})
			o.progressf(p, "failed: %v", err)
		}
		rep.Loads[len(rep.Loads)-1].After = LoadAverage()
		o.progressf(p, "done in %s", time.Since(t).Round(100*time.Millisecond))
	}
	rep.Took = time.Since(start)
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

func (o *Options) progressf(phase, format string, a ...any) {
	fmt.Fprintf(o.Progress, "[bench %s %-8s] %s\n", time.Now().Format("15:04:05"), phase, fmt.Sprintf(format, a...))
}
