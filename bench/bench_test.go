package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/gateway"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (wxhub) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0", 3 * time.Second, false},
		{"name with spaces and parens", "1234 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, false},
		{"no name", "1234 wxhub S", 0, true},
		{"short", "1234 (x) S 1 2", 0, true},
		{"not a number", "1234 (x) S 1 1 1 0 -1 0 0 0 0 0 a b", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.given))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseStatCPU = %s, %v; want %s, wantErr %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS {
		t.Fatalf("RSS %d HWM %d", s.RSS, s.HWM)
	}
	if _, err := ReadProc(-1); err == nil {
		t.Fatal("no such process: want an error")
	}
}

func TestStatusKB(t *testing.T) {
	st := []byte("Name:\twxhub\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n")
	if got := statusKB(st, "VmRSS:"); got != 10240 {
		t.Fatalf("VmRSS %d", got)
	}
	if got := statusKB(st, "VmSwap:"); got != 0 {
		t.Fatalf("absent key %d", got)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{thousands(0), "0"}, {thousands(999), "999"}, {thousands(1000), "1,000"}, {thousands(1234567), "1,234,567"},
		{thousands(-1500), "-1,500"}, {rate(999.6), "1,000/s"},
		{ms(1500 * time.Microsecond), "1.50 ms"}, {ms(15 * time.Millisecond), "15.0 ms"}, {ms(250 * time.Millisecond), "250 ms"},
		{ms(12 * time.Second), "12.0 s"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestReportMarkdown(t *testing.T) {
	r := &Report{Machine: Machine{CPUs: 2, CPUModel: "Test CPU", GoVersion: "go1.26", OS: "linux/amd64"},
		Date: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Command: "wxhub-bench run", Took: time.Minute}
	r.add(Row{Area: "ingest", Measure: "a|b", Result: "1/s", Goal: ">= 50%", Met: "yes"})
	r.Sections = append(r.Sections, Section{Title: "Detail", Header: []string{"x", "y"}, Rows: [][]string{{"1", "2"}}, Notes: []string{"note"}})
	md := r.Markdown()
	for _, want := range []string{"# Benchmarks", "2 CPUs, Test CPU", "`wxhub-bench run`", "| ingest | a\\|b | 1/s | >= 50% | yes |",
		"## Detail", "| x | y |\n|---|---|\n| 1 | 2 |", "note", "## How the figures are measured"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if m := DescribeMachine(); m.CPUs < 1 || m.GoVersion == "" {
		t.Fatalf("machine %+v", m)
	}
}

func TestOptionsValidate(t *testing.T) {
	hub := HubFunc(func(context.Context, *config.Config, net.Listener, []string) (*Hub, error) { return nil, nil })
	tests := []struct {
		name    string
		given   Options
		wantErr bool
	}{
		{"defaults", Options{Hub: hub}, false},
		{"cost alone needs no hub", Options{Phases: []string{PhaseCost}}, false},
		{"e2e needs a hub", Options{Phases: []string{PhaseE2E}}, true},
		{"unknown phase", Options{Hub: hub, Phases: []string{"soak"}}, true},
		{"rates not increasing", Options{Hub: hub, Rates: []float64{1000, 200}}, true},
		{"zero rate", Options{Hub: hub, Rates: []float64{0}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.given
			o.defaults()
			err := o.validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("validate = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("%v does not wrap ErrConfig", err)
			}
		})
	}
}

// gatewayOnly is a HubFunc with only the real gateway on an embedded bus:
// enough for the ingest phase.
func gatewayOnly(ctx context.Context, cfg *config.Config, ln net.Listener, only []string) (*Hub, error) {
	b, err := bus.Open(ctx, cfg.NATS, zap.NewNop())
	if err != nil {
		return nil, err
	}
	g, err := gateway.New(cfg.GatewayConfig(), b, zap.NewNop(), gateway.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		b.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(sctx, ln) }()
	return &Hub{Addr: ln.Addr().String(), Bus: b, Stop: func() error {
		cancel()
		err := <-done
		return errors.Join(err, b.Close())
	}}, nil
}

func TestIngestPhaseAgainstTheRealGateway(t *testing.T) {
	var progress strings.Builder
	rep, err := Run(context.Background(), Options{Hub: gatewayOnly, Phases: []string{PhaseIngest},
		IngestDuration: 500 * time.Millisecond, IngestConcurrency: 4, TempDir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	md := rep.Markdown()
	for _, want := range []string{"gateway / plain handler", "| every callback durably acknowledged | yes |", "## Gateway ingest"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if !strings.Contains(progress.String(), "[bench") {
		t.Error("no progress lines")
	}
}

func TestMemCurve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(sec float64, mib int64) memAt {
		return memAt{t: t0.Add(time.Duration(sec * float64(time.Second))), rss: mib << 20, live: mib << 19}
	}
	samples := []memAt{at(0, 40), at(1, 50), at(2.5, 60), at(4, 62), at(10, 62)}
	tests := []struct {
		name    string
		from    time.Time
		n       int
		want    []int64
		wantRow string
	}{
		{"levels off", t0, 4, []int64{40, 60, 62, 62, 62}, "40, 60, 62, 62, 62 MiB; highest per fifth 50, 60, 62, 0, 62 MiB (last fifth vs the middle one +0%)"},
		{"before the first sample", t0.Add(-10 * time.Second), 2, []int64{0, 0, 40}, "0, 0, 40 MiB; highest per fifth 0, 0, 0, 0, 40 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := tt.from.Add(10 * time.Second)
			got := memCurve(samples, rssOf, tt.from, to, tt.n)
			for i := range got {
				got[i] >>= 20
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("curve %v, want %v", got, tt.want)
			}
			for i := range got {
				got[i] <<= 20
			}
			if row := growthRow(got, memHighs(samples, rssOf, tt.from, to, 5)); row != tt.wantRow {
				t.Fatalf("row %q, want %q", row, tt.wantRow)
			}
		})
	}
	if live := memCurve(samples, liveOf, t0, t0.Add(10*time.Second), 1); fmt.Sprint(live) != fmt.Sprint([]int64{20 << 20, 31 << 20}) {
		t.Fatalf("live curve %v", live)
	}
}

func TestMetricValue(t *testing.T) {
	body := []byte("# HELP go_gc_heap_live_bytes x\n# TYPE go_gc_heap_live_bytes gauge\ngo_gc_heap_live_bytes_extra 1\ngo_gc_heap_live_bytes 1.2345e+08\n" +
		"go_cpu_classes_gc_total_cpu_seconds_total 3.5\n")
	if v := metricValue(body, "go_gc_heap_live_bytes"); v != 1.2345e8 {
		t.Fatalf("live = %v", v)
	}
	if v := metricValue(body, "go_cpu_classes_gc_total_cpu_seconds_total"); v != 3.5 {
		t.Fatalf("gc cpu = %v", v)
	}
	if v := metricValue(body, "absent"); v != 0 {
		t.Fatalf("absent = %v", v)
	}
}

// The report links the hand-kept history; the file it links exists next to
// docs/benchmarks.md, holds dated entries, and the committed report links it.
func TestBenchmarksDocLinksHistory(t *testing.T) {
	link := "](" + HistoryFile + ")"
	if md := (&Report{}).Markdown(); !strings.Contains(md, link) {
		t.Fatalf("the report does not link %s:\n%s", HistoryFile, md)
	}
	hist, err := os.ReadFile(filepath.Join("..", "docs", HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^### 20[0-9]{2}-[0-9]{2}-[0-9]{2}`).Match(hist) {
		t.Fatalf("docs/%s has no dated entry (### YYYY-MM-DD ...)", HistoryFile)
	}
	doc, err := os.ReadFile("../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), link) {
		t.Fatalf("docs/benchmarks.md does not link %s: rerun `make bench`", HistoryFile)
	}
}

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"
	a, err := parseProcStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	// busy: user+nice+system+irq+softirq+steal = 100+5+50+3+2+0; idle and iowait are not.
	if a.busy != 160 || a.total != 1000 {
		t.Fatalf("parse = %+v, want busy 160 of 1000", a)
	}
	b := cpuTimes{busy: a.busy + 30, total: a.total + 200}
	if got := busyShare(a, b); got != 0.15 {
		t.Fatalf("busyShare = %v, want 0.15", got)
	}
	if got := busyShare(b, b); got != 0 {
		t.Fatalf("busyShare with no time passed = %v, want 0", got)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 x 4 5\n"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) should fail", bad)
		}
	}
}
