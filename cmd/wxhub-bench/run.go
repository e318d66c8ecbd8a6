package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wxhub/wxhub/bench"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub"
)

// benchCmd runs the benchmark phases (package bench) and writes the report.
func benchCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	out := fs.String("out", "", "write the markdown report here too (make bench: docs/benchmarks.md)")
	bin := fs.String("bin", "./bin/wxhub", "the wxhub binary the cost phase runs as a child process")
	phases := fs.String("phases", strings.Join(bench.AllPhases, ","), "phases to run, in order")
	rates := fs.String("rates", "200,500,1000,2000,3000,4000", "end-to-end offered rates, msg/s, increasing")
	allRates := fs.Bool("all-rates", false, "offer every rate even after one is not sustained")
	step := fs.Duration("step", 10*time.Second, "time per end-to-end rate")
	ingest := fs.Duration("ingest", 10*time.Second, "time per ingest run (plain handler, then gateway)")
	users := fs.Int("users", 10000, "members of the simulated corp writing in the end-to-end phase")
	bulk := fs.Int("bulk", 10000, "bulk backlog of the outbound phase")
	costLoad := fs.Duration("cost-load", 45*time.Second, "how long the cost phase loads `wxhub run` (a long value makes it a soak)")
	costRate := fs.Float64("cost-rate", 300, "the cost phase's offered rate, msg/s")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process to this file (of the hub too with --in-process)")
	inProcess := fs.Bool("in-process", false, "run the e2e phase's hub in the bench process instead of as a `wxhub run` child")
	childStderr := fs.String("child-stderr", "", "append the child `wxhub run`'s standard error to this file (with GODEBUG=gctrace=1 in the environment: its GC cycles)")
	latencies := fs.String("latencies", "", "write every end-to-end reply's offered rate, due time, latency and its three legs (µs) to this file, a line each")
	gcFloor := fs.Int("gc-floor", -1, "runtime.gc_heap_floor_mib of the child `wxhub run` (e2e and cost phases); -1: the binary's default")
	externalNATS := fs.Bool("external-nats", false, "the child `wxhub run` uses a NATS server in a process of its own (`wxhub-bench nats`) instead of its embedded one")
	childPprof := fs.String("child-pprof", "", "the child `wxhub run` (e2e and cost phases) serves /debug/pprof here (loopback host:port), to profile it under load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rs []float64
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("--rates: %q is not a number", s)
		}
		rs = append(rs, r)
	}
	if *costLoad > 2*time.Hour {
		return errors.New("--cost-load: at most 2h")
	}
	opts := bench.Options{
		Hub: benchHub, Binary: *bin, Phases: strings.Split(*phases, ","), Users: *users,
		IngestDuration: *ingest, Rates: rs, AllRates: *allRates, StepDuration: *step, OutboundBulk: *bulk,
		CostLoad: *costLoad, CostRate: *costRate, CPUProfile: *cpuProfile, ChildPprof: *childPprof, InProcess: *inProcess,
		ChildStderr: *childStderr, Latencies: *latencies,
		Command: "wxhub-bench run " + strings.Join(args, " "),
	}
	if *gcFloor >= 0 {
		opts.ChildGCFloorMiB = gcFloor
	}
	if *externalNATS {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		opts.NATSCommand = []string{self, "nats"}
	}
	rep, runErr := bench.Run(ctx, opts)
	if rep == nil {
		return runErr
	}
	fmt.Println()
	fmt.Print(rep.Table())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.Markdown()), 0o644); err != nil {
			return errors.Join(runErr, fmt.Errorf("--out: %w", err))
		}
		fmt.Fprintf(os.Stderr, "\nreport written to %s\n", *out)
	}
	return runErr
}

// benchHub starts the hub in this process for a bench phase.
func benchHub(ctx context.Context, cfg *config.Config, ln net.Listener, only []string) (*bench.Hub, error) {
	log, err := newLogger(cfg.Log.Level)
	if err != nil {
		return nil, err
	}
	setup, err := hub.Configure(cfg, hub.Builtins)
	if err != nil {
		return nil, err
	}
	o := hub.Options{Listener: ln}
	if len(only) > 0 {
		if o.Only, err = hub.ParseOnly(strings.Join(only, ",")); err != nil {
			return nil, err
		}
	}
	h, stop, err := hub.Start(ctx, setup, log, o)
	if err != nil {
		return nil, err
	}
	return &bench.Hub{Addr: h.Addr, Bus: h.Bus, Stop: stop}, nil
}
