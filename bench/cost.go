package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/wecom/sim/load"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports (sysconf would need cgo).
const clockTicks = 100

// ProcSample is a process's CPU time and resident memory at one instant.
type ProcSample struct {
	CPU time.Duration // utime + stime
	RSS int64         // bytes (VmRSS)
	HWM int64         // bytes (VmHWM: the peak RSS so far)
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("bench: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("bench: %w", err)
	}
	return ProcSample{CPU: cpu, RSS: statusKB(status, "VmRSS:") * 1024, HWM: statusKB(status, "VmHWM:") * 1024}, nil
}

// parseStatCPU reads utime and stime (fields 14 and 15). The command name
// (field 2) may hold spaces and parentheses, so fields count from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bench: /proc stat: no command field")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state): utime is field 14 -> f[11], stime f[12].
	if len(f) < 13 {
		return 0, errors.New("bench: /proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: /proc stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

func statusKB(status []byte, key string) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// sampler watches a process every 250 ms and keeps the peak RSS; with a
// metrics URL (the hub's /metrics) it also reads, every 5 s, the live heap
// after the last collection and the CPU the collector has used.
type sampler struct {
	pid        int
	metricsURL string
	client     *http.Client
	mu         sync.Mutex
	ticks      int
	peak       int64
	last       ProcSample
	live       int64   // go_gc_heap_live_bytes, latest read
	scraping   bool    // read /metrics (only under load: a read costs the hub 10-25 ms of CPU, most of it the sender's per-member limit gauges)
	mem        []memAt // every sample, for the growth over a long run
	err        error
	stop       chan struct{}
	done       chan struct{}
}

func startSampler(pid int, metricsURL string) *sampler {
	s := &sampler{pid: pid, metricsURL: metricsURL, client: &http.Client{Timeout: time.Second},
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	p, err := ReadProc(s.pid)
	s.mu.Lock()
	due := s.scraping && s.ticks%20 == 0 // every 5 s
	s.ticks++
	s.mu.Unlock()
	if due {
		s.readMetrics()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return
	}
	s.last = p
	s.peak = max(s.peak, p.RSS)
	s.mem = append(s.mem, memAt{time.Now(), p.RSS, s.live})
}

// readMetrics reads the hub's /metrics: it keeps the live heap for the next
// samples and returns the collector's CPU so far. When the hub does not
// answer, the last live figure stays and the CPU is 0 (the RSS figures stand
// on their own).
func (s *sampler) readMetrics() (gcCPU time.Duration) {
	if s.metricsURL == "" {
		return 0
	}
	resp, err := s.client.Get(s.metricsURL)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0
	}
	if live := int64(metricValue(body, "go_gc_heap_live_bytes")); live > 0 {
		s.mu.Lock()
		s.live = live
		s.mu.Unlock()
	}
	return time.Duration(metricValue(body, "go_cpu_classes_gc_total_cpu_seconds_total") * float64(time.Second))
}

// metricValue is the value of an unlabelled sample in Prometheus text format.
func metricValue(body []byte, name string) float64 {
	for line := range bytes.Lines(body) {
		rest, ok := bytes.CutPrefix(line, []byte(name+" "))
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
		if err != nil {
			return 0
		}
		return v
	}
	return 0
}

// memAt is one memory sample: the RSS and the live heap (0 when unknown).
type memAt struct {
	t    time.Time
	rss  int64
	live int64
}

func rssOf(m memAt) int64  { return m.rss }
func liveOf(m memAt) int64 { return m.live }

// curve returns a figure at n+1 evenly spaced instants from `from` to `to`
// (the last sample taken at or before each), to show whether memory levels
// off or keeps growing under a steady load.
func (s *sampler) curve(of func(memAt) int64, from, to time.Time, n int) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return memCurve(s.mem, of, from, to, n)
}

// highs returns the highest figure in each of n equal parts of [from, to].
func (s *sampler) highs(of func(memAt) int64, from, to time.Time, n int) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return memHighs(s.mem, of, from, to, n)
}

func memCurve(samples []memAt, of func(memAt) int64, from, to time.Time, n int) []int64 {
	out := make([]int64, 0, n+1)
	j := 0
	for i := 0; i <= n; i++ {
		at := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / float64(n)))
		for j+1 < len(samples) && !samples[j+1].t.After(at) {
			j++
		}
		if len(samples) == 0 || samples[j].t.After(at) {
			out = append(out, 0)
			continue
		}
		out = append(out, of(samples[j]))
	}
	return out
}

func memHighs(samples []memAt, of func(memAt) int64, from, to time.Time, n int) []int64 {
	out := make([]int64, n)
	span := to.Sub(from)
	if span <= 0 {
		return out
	}
	for _, m := range samples {
		if m.t.Before(from) || m.t.After(to) {
			continue
		}
		i := min(int(float64(m.t.Sub(from))/float64(span)*float64(n)), n-1)
		out[i] = max(out[i], of(m))
	}
	return out
}

// growthRow describes memory under a steady load: the figure at every tenth
// (curve, 11 points) and the highest in each fifth (highs). Memory held for a
// window (the server's duplicate ids) rises and falls as it is compacted, so
// the figure at the end says little alone; a bounded process has the highs of
// the later fifths level with the middle one's.
func growthRow(curve, highs []int64) string {
	var b strings.Builder
	writeMiB := func(vs []int64) {
		for i, v := range vs {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%.0f", float64(v)/(1<<20))
		}
		b.WriteString(" MiB")
	}
	writeMiB(curve)
	b.WriteString("; highest per fifth ")
	writeMiB(highs)
	mid, last := highs[len(highs)/2], highs[len(highs)-1]
	if mid > 0 {
		pct := math.Round(100 * float64(last-mid) / float64(mid))
		fmt.Fprintf(&b, " (last fifth vs the middle one %+.0f%%)", pct+0) // +0: no "-0"
	}
	return b.String()
}

// window returns the latest sample and the peak RSS since the last call, and
// resets the peak; it reads /metrics now, so that the collector's CPU is
// exact at the start and end of a load.
func (s *sampler) window() (ProcSample, int64, time.Duration, error) {
	gcCPU := s.readMetrics()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	peak := s.peak
	s.peak = s.last.RSS
	return s.last, peak, gcCPU, s.err
}

// watchHeap starts reading the hub's /metrics every 5 s.
func (s *sampler) watchHeap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scraping = s.metricsURL != ""
}

// liveHeap is the latest live heap read (0 before the first).
func (s *sampler) liveHeap() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// gcShare is ", N% of it the Go collector" when the collector's CPU is known.
func gcShare(gc, total time.Duration) string {
	if gc <= 0 || total <= 0 {
		return ""
	}
	return fmt.Sprintf(", %.0f%% of it the Go collector", 100*gc.Seconds()/total.Seconds())
}

func (s *sampler) close() { close(s.stop); <-s.done }

// childConfig is the YAML the child `wxhub run` reads: the bench's simulated
// corp, corp ceilings off (as in the e2e phase), errors-only logs.
// natsPort 0: no embedded server, the child connects to natsURL.
func childConfig(e *env, o *Options, listen string, natsPort int, natsURL string) ([]byte, error) {
	type app struct {
		Name           string `yaml:"name"`
		AgentID        int64  `yaml:"agent_id"`
		Secret         string `yaml:"secret"`
		Token          string `yaml:"token"`
		EncodingAESKey string `yaml:"encoding_aes_key"`
	}
	var apps []app
	for _, a := range e.cfg.WeCom.Apps {
		apps = append(apps, app{a.Name, a.AgentID, a.Secret, a.Token, a.EncodingAESKey})
	}
	doc := map[string]any{
		"nats":    map[string]any{"data_dir": filepath.Join(e.dir, "nats"), "port": natsPort},
		"gateway": map[string]any{"listen": listen},
		"wecom":   map[string]any{"api_base": e.cfg.WeCom.APIBase, "corp_id": e.cfg.WeCom.CorpID, "apps": apps},
		"api":     map[string]any{"keys": []map[string]any{{"name": "bench", "key": benchAPIKey, "apps": []string{"*"}}}},
		"sender":  map[string]any{"limits": map[string]any{"corp_api_minute": -1, "corp_api_hour": -1}},
		"log":     map[string]any{"level": "error", "format": "json"},
	}
	if natsPort == 0 {
		// The external server's generated logins are in its data dir.
		doc["nats"] = map[string]any{"url": natsURL, "data_dir": filepath.Join(e.dir, "nats-external")}
	}
	if o.ChildGCFloorMiB != nil {
		doc["runtime"] = map[string]any{"gc_heap_floor_mib": *o.ChildGCFloorMiB}
	}
	return yaml.Marshal(doc)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(ctx context.Context, url string, exited <-chan error) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("wxhub run exited before it was ready: %v", err)
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.New("wxhub run was not ready within 30 s")
}

func runCost(ctx context.Context, o *Options, rep *Report) error {
	users := load.Users("u", o.Users)
	e, err := newEnv(ctx, o, envSpec{users: users, simLimits: simNoCorpLimits, tune: noCorpLimits, child: true})
	if err != nil {
		return err
	}
	defer e.close()
	pid := e.child.pid
	smp := startSampler(pid, "http://"+e.hub.Addr+"/metrics")
	defer smp.close()

	// Warm up so that the idle figure is a hub that has worked (tokens, consumers).
	if _, err := e.sim.Say(ctx, e.target.App, users[0], "echo warm-up"); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	o.progressf(PhaseCost, "wxhub run (pid %d) ready; idle for %s", pid, o.CostIdle)
	idle0, _, _, err := smp.window()
	idleStart := time.Now()
	if err != nil {
		return err
	}
	sleepCtx(ctx, o.CostIdle)
	idle1, idlePeak, gc0, err := smp.window()
	idleEnd := time.Now()
	if err != nil {
		return err
	}

	n := int(o.CostRate*o.CostLoad.Seconds()) + 1
	cfg := load.Config{Target: e.target, Users: users, Rate: o.CostRate, Duration: o.CostLoad,
		Mix: load.Mix{load.KindText: 1}, TextPrefix: "echo ",
		Progress: func(p load.Progress) {
			if int(p.Elapsed.Seconds())%5 == 0 {
				s, _ := ReadProc(pid)
				o.progressf(PhaseCost, "load %2.0fs: %s answered, %s replies, RSS %s, live heap %s", p.Elapsed.Seconds(), thousands(p.OK),
					thousands(int64(e.rec.Count())), mib(s.RSS), mib(smp.liveHeap()))
			}
		}}
	reqs, err := load.Prepare(cfg, n)
	if err != nil {
		return err
	}
	e.rec.Reset()
	g, err := load.New(cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	o.progressf(PhaseCost, "load: %s for %s", rate(o.CostRate), o.CostLoad)
	smp.watchHeap()
	loadStart := time.Now()
	res, err := g.Run(ctx, reqs)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, o.Grace)
	e.rec.WaitCount(wctx, res.OK)
	cancel()
	load1, loadPeak, gc1, err := smp.window()
	// The load's span runs until the last reply was counted, not for the whole
	// grace: the idle share taken off below is per second of it.
	span := time.Since(idleEnd)
	if err != nil {
		return err
	}
	replies := e.rec.Count()
	loadCPU := load1.CPU - idle1.CPU
	idleCPU := idle1.CPU - idle0.CPU
	// Take off what the hub would have spent idle over the same span.
	idleSpan := idleEnd.Sub(idleStart)
	busy := loadCPU - time.Duration(float64(idleCPU)*span.Seconds()/idleSpan.Seconds())
	perK := time.Duration(0)
	if replies > 0 {
		perK = busy * 1000 / time.Duration(replies)
	}
	perKText := ms(perK) + " CPU"
	if perK <= 0 {
		// A short, light load next to a hub still settling after its start.
		perKText = "not measurable (the load's CPU is within the idle's)"
	}
	rep.add(Row{Area: "cost", Measure: "`wxhub run` idle: CPU, resident memory",
		Result: fmt.Sprintf("%.1f%% of a core, RSS %s (peak %s)", 100*idleCPU.Seconds()/idleSpan.Seconds(), mib(idle1.RSS), mib(idlePeak))})
	rep.add(Row{Area: "cost", Measure: fmt.Sprintf("`wxhub run` at %s e2e: CPU per 1,000 messages", rate(o.CostRate)),
		Result: fmt.Sprintf("%s (%.0f%% of a core%s; %s messages round trip)", perKText, 100*loadCPU.Seconds()/span.Seconds(),
			gcShare(gc1-gc0, loadCPU), thousands(int64(replies)))})
	rep.add(Row{Area: "cost", Measure: fmt.Sprintf("`wxhub run` at %s e2e: resident memory", rate(o.CostRate)),
		Result: fmt.Sprintf("RSS %s at the end, peak %s (VmHWM %s)", mib(load1.RSS), mib(loadPeak), mib(load1.HWM))})
	loadEnd := loadStart.Add(res.Elapsed)
	rep.add(Row{Area: "cost", Measure: fmt.Sprintf("`wxhub run` at %s e2e for %s: RSS at every tenth of the load", rate(o.CostRate), o.CostLoad),
		Result: growthRow(smp.curve(rssOf, loadStart, loadEnd, 10), smp.highs(rssOf, loadStart, loadEnd, 5))})
	if live := smp.curve(liveOf, loadStart, loadEnd, 10); slices.Max(live) > 0 {
		rep.add(Row{Area: "cost", Measure: fmt.Sprintf("`wxhub run` at %s e2e for %s: live heap after GC (`go_gc_heap_live_bytes`) at every tenth", rate(o.CostRate), o.CostLoad),
			Result: growthRow(live, smp.highs(liveOf, loadStart, loadEnd, 5))})
	}
	if err := e.hub.Stop(); err != nil {
		return err
	}
	o.progressf(PhaseCost, "idle RSS %s; under load %s CPU per 1,000 messages, RSS peak %s", mib(idle1.RSS), ms(perK), mib(loadPeak))
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
