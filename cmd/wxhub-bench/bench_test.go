package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bench"
)

// The e2e phase against the whole hub in this process, at a low rate for a
// second: every callback's reply comes back through router, echo connector and
// sender; with --latencies, the file gets a line per reply, split into its legs.
func TestBenchE2EPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub")
	}
	for _, timeline := range []string{"", filepath.Join(t.TempDir(), "latencies.txt")} {
		t.Run("latencies="+filepath.Base(timeline), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var progress strings.Builder
			rep, err := bench.Run(ctx, bench.Options{Hub: benchHub, InProcess: true, Phases: []string{bench.PhaseE2E},
				Rates: []float64{50}, StepDuration: time.Second, Users: 100, Latencies: timeline,
				TempDir: t.TempDir(), Progress: &progress})
			if err != nil {
				t.Fatalf("%v\n%s", err, progress.String())
			}
			md := rep.Markdown()
			if !strings.Contains(md, "| 50/s | 50 | 50 |") {
				t.Errorf("every callback should have its reply:\n%s", md)
			}
			// Every reply split into its three legs, from the streams' timestamps
			// (wall clock: a step of the VM's clock during the run can make a leg
			// negative, so the sign is not checked).
			if !regexp.MustCompile(`\| 50/s \| -?[0-9.]+ ms / -?[0-9.]+ ms \| -?[0-9.]+ ms / -?[0-9.]+ ms \| -?[0-9.]+ ms / -?[0-9.]+ ms \| 50 \|`).MatchString(md) {
				t.Errorf("the legs of all 50 replies should be measured:\n%s", md)
			}
			if timeline != "" {
				checkTimeline(t, timeline)
			}
		})
	}
}

func checkTimeline(t *testing.T, timeline string) {
	raw, err := os.ReadFile(timeline)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 1+50 || !strings.HasPrefix(lines[0], "#") {
		t.Fatalf("timeline: %d lines, want a header and 50:\n%s", len(lines), raw)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 || f[0] != "50" {
			t.Fatalf("timeline line %q: want rate, due, latency and three legs", l)
		}
		var us [4]int64
		for i := range us {
			if us[i], err = strconv.ParseInt(f[2+i], 10, 64); err != nil {
				t.Fatalf("timeline line %q: field %d not a number of µs", l, 3+i)
			}
		}
		if us[0] <= 0 {
			t.Fatalf("timeline line %q: latency not positive", l)
		}
		// The legs cut the latency at two instants: they add up to it (µs rounding).
		if sum := us[1] + us[2] + us[3]; sum < us[0]-3 || sum > us[0]+3 {
			t.Fatalf("timeline line %q: legs add up to %d µs, latency %d µs", l, sum, us[0])
		}
	}
}

// TestMain lets the test binary act as wxhub-bench: the external-NATS test
// starts it as `nats` with WXHUB_BENCH_TEST_BE_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("WXHUB_BENCH_TEST_BE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildWxhub builds the product binary the cost and child phases run.
func buildWxhub(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wxhub")
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/wxhub/wxhub/cmd/wxhub").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/wxhub: %v\n%s", err, out)
	}
	return bin
}

// The cost phase against `wxhub run` as a child: CPU per message, and the
// memory rows, the live heap read from the child's /metrics among them.
func TestBenchCostPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub")
	}
	bin := buildWxhub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	rep, err := bench.Run(ctx, bench.Options{Binary: bin, Phases: []string{bench.PhaseCost},
		CostIdle: 2 * time.Second, CostLoad: 2 * time.Second, CostRate: 50, Users: 100,
		Grace:   30 * time.Second, // the wait ends with the last reply; a slow (race) run needs more than 5 s
		TempDir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	md := rep.Markdown()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`CPU per 1,000 messages \| [1-9][0-9.]* m?s CPU .*; 100 messages round trip\)`),
		regexp.MustCompile(`RSS at every tenth of the load \| ([1-9][0-9]*, ){10}.*highest per fifth`),
		regexp.MustCompile("live heap after GC \\(`go_gc_heap_live_bytes`\\) at every tenth \\| [1-9][0-9]*, "),
	} {
		if !want.MatchString(md) {
			t.Errorf("report lacks %s:\n%s", want, md)
		}
	}
}

// The e2e phase against a `wxhub run` child on a NATS server of its own
// (`wxhub-bench nats`, this test binary), with an explicit GC heap floor:
// every reply comes back, and the step's row has the peak RSS of the child and of the NATS server.
func TestBenchExternalNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub and a NATS server")
	}
	bin := buildWxhub(t)
	t.Setenv("WXHUB_BENCH_TEST_BE_MAIN", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	floor := 0
	rep, err := bench.Run(ctx, bench.Options{Binary: bin, NATSCommand: []string{os.Args[0], "nats"}, ChildGCFloorMiB: &floor,
		Hub: benchHub, Phases: []string{bench.PhaseE2E}, Rates: []float64{50}, StepDuration: time.Second, Users: 100,
		TempDir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	md := rep.Markdown()
	if !regexp.MustCompile(`\| 50/s \| 50 \| 50 \| .* \| [1-9][0-9]* MiB \+ NATS [1-9][0-9]* MiB \|`).MatchString(md) {
		t.Errorf("every callback should have its reply, and the child's RSS be shown:\n%s", md)
	}
	if !strings.Contains(progress.String(), "NATS (pid") {
		t.Errorf("no NATS process was started:\n%s", progress.String())
	}
}
