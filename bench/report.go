package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/wxhub/wxhub/hub"
)

// Row is one line of the summary table.
type Row struct {
	Area    string // ingest, e2e, outbound, cost
	Measure string
	Result  string
	Goal    string // "" when the issue sets none
	Met     string // "yes", "no" or ""
}

// Section is a detail table under the summary.
type Section struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string
}

// Report is a bench run's result.
type Report struct {
	Machine  Machine
	Date     time.Time
	Command  string
	Took     time.Duration
	Rows     []Row
	Sections []Section
	// Loads: the machine's load average around each phase. The bench shares
	// the machine with whatever else runs; a figure means little without it.
	Loads []PhaseLoad
}

// PhaseLoad is /proc/loadavg (1, 5, 15 min) before and after one phase.
type PhaseLoad struct {
	Phase, Before, After string
}

// LoadAverage is the first three fields of /proc/loadavg, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int
	CPUModel  string
	GoVersion string
	OS        string
}

// DescribeMachine reads the CPU model from /proc/cpuinfo (Linux).
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		m.CPUModel = cpuModel(f)
	}
	if m.CPUModel == "" {
		m.CPUModel = "unknown"
	}
	return m
}

func cpuModel(f *os.File) string {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// Table is the summary table in markdown.
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString("| area | measure | result | goal | met |\n|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", row.Area, cell(row.Measure), cell(row.Result), cell(row.Goal), row.Met)
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// Markdown is the whole report: machine, date, command, the summary, the details.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `wxhub-bench run` (`make bench`); do not edit by hand — rerun it. What each figure means and how it is measured is in [How the figures are measured](#how-the-figures-are-measured).\n\n")
	fmt.Fprintf(&b, "- machine: %d CPUs, %s, %s\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.OS)
	fmt.Fprintf(&b, "- go: %s\n", r.Machine.GoVersion)
	fmt.Fprintf(&b, "- date: %s\n", r.Date.Format("2006-01-02 15:04 MST"))
	if r.Command != "" {
		fmt.Fprintf(&b, "- command: `%s`\n", r.Command)
	}
	fmt.Fprintf(&b, "- took: %s\n", r.Took.Round(time.Second))
	for _, l := range r.Loads {
		fmt.Fprintf(&b, "- load average (1/5/15 min) %s: %s before, %s after\n", l.Phase, l.Before, l.After)
	}
	b.WriteString("\n")
	b.WriteString("## Summary\n\n")
	b.WriteString(r.Table())
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Title)
		if len(s.Header) > 0 {
			b.WriteString("| " + strings.Join(s.Header, " | ") + " |\n|")
			for range s.Header {
				b.WriteString("---|")
			}
			b.WriteString("\n")
			for _, row := range s.Rows {
				cells := make([]string, len(row))
				for i, c := range row {
					cells[i] = cell(c)
				}
				b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
			}
		}
		if len(s.Notes) > 0 {
			b.WriteString("\n")
			for _, n := range s.Notes {
				b.WriteString(n + "\n")
			}
		}
	}
	b.WriteString("\n" + methodology + gcFloorNote())
	b.WriteString("\n" + historyLink)
	return b.String()
}

// HistoryFile is the hand-kept record of what each optimisation changed,
// relative to the report (docs/): a rerun rewrites the report, not it.
const HistoryFile = "benchmarks-history.md"

const historyLink = "## Before and after\n\nWhat each change to the hot paths moved, with the commands and the figures before and after, is kept by hand in [" + HistoryFile + "](" + HistoryFile + ").\n"

// gcFloorNote says which GC heap floor the child hub ran with: the binary's
// default, where the comparison behind it is.
func gcFloorNote() string {
	return fmt.Sprintf(`- **GC heap floor and memory limit.** `+"`wxhub run`"+` runs with its defaults: the collector waits until
  the heap has grown by %d MiB (`+"`runtime.gc_heap_floor_mib`"+`, `+"`hub.DefaultGCHeapFloorMiB`"+`) and works
  harder near a soft limit of %d MiB (`+"`runtime.memory_limit_mib`"+`, `+"`hub.DefaultMemoryLimitMiB`"+`) in
  a process with the embedded NATS server, and keeps Go's own pacing on an external
  cluster; GOGC or GOMEMLIMIT set by the operator win. `+"`--gc-floor N`"+` and
  `+"`--external-nats`"+` run the child with another floor or on a NATS server of its
  own; the comparison behind the defaults (RSS and p99 at 300 and 1,000 msg/s) is
  in [%s](%s).
`, hub.DefaultGCHeapFloorMiB, hub.DefaultMemoryLimitMiB, HistoryFile, HistoryFile)
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
}

func rate(v float64) string {
	return fmt.Sprintf("%s/s", thousands(int64(v+0.5)))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

const methodology = `## How the figures are measured

Everything runs on this one machine, on loopback: the load generator
(` + "`wecom/sim/load`" + `), the WeCom simulator (` + "`wecom/sim`" + `) and the hub share its cores, so
every figure is a floor for a hub that has the machine to itself. Each phase
starts a fresh simulator and hub (embedded NATS, JetStream on disk in a new
temporary directory). Latencies are exact percentiles over every sample. Each
phase after the first starts once the bench's own heap is collected and the
CPUs are quiet (at most 20 s). This machine is a shared VM whose speed changes
within the hour (the plain handler below answered 15,600 to 25,600 requests/s
in runs of one day): compare figures within one run, and read the ratios.

- **Gateway ingest.** The generator encrypts and signs every callback before the
  run (a mix of text, menu clicks, images and locations, each with its own MsgId,
  so none is merged by the hub's dedup) and then posts them with a fixed number of
  requests in flight, as fast as they are answered. It does so first to a plain
  ` + "`net/http`" + ` handler that reads the body and answers 200, then to the gateway, in the
  same process, with the same client and the same requests. The hub runs only its
  gateway (` + "`--only gateway`" + `) so that the figure is the gateway's: signature check,
  decryption, XML parsing, JSON encoding, the publish to WXHUB_IN and the wait for
  JetStream's acknowledgement before answering. "Durably acknowledged" is checked
  by counting the messages in WXHUB_IN against the 200s answered.
- **End to end.** Callback → gateway → WXHUB_IN → router → WXHUB_ROUTE → echo
  connector → WXHUB_OUT → sender → the simulator's ` + "`message/send`" + `. The generator
  offers a constant rate (open loop: each request is due at start + i/rate, and
  latency counts from that due time, so a stall shows as latency, not as a lower
  rate). The hub is ` + "`bin/wxhub run`" + ` in a process of its own (all components,
  embedded NATS, the generated config of the cost phase), so that the garbage
  collection of the generator's and the simulator's heap does not stall it
  (` + "`--in-process`" + ` runs it inside the bench instead, to profile it with ` + "`--cpuprofile`" + `).
  While the hub is a child, the bench process (generator and simulator only) runs
  with GOGC=400 unless GOGC is set: with the default its own collections, several a
  second, showed up as late callbacks and late replies. The hub keeps the binary's
  default, and so do the phases that run a hub inside the bench (ingest, outbound).
  Each text carries a sequence number that the echo connector sends back;
  a recorder in front of the simulator notes when each reply was accepted.
  Latency = reply accepted − callback due. A rate is *sustained* when every
  answered callback's reply arrived within the grace period after the step, no
  callback failed, and p99 stayed under 1 s. After each step the bench reads the
  step's messages back from WXHUB_IN and WXHUB_OUT and splits every reply's
  latency at the times JetStream stored its event and its reply (*End to end,
  leg by leg*): a tail in one leg names the stage to profile, a tail in every leg
  is queueing on busy cores.
- **Limits during the e2e run.** WeCom lets an app send one member at most 30
  messages in any minute (and 1,000 an hour); the corp has per-API ceilings
  (10,000 message/send a minute) and a daily recipient quota. Those are WeCom's
  limits, not the hub's: the sender obeys them and the e2e phase must not measure
  them. So the corp ceilings and the daily quota are switched off in the simulator
  and in the sender for that phase, and the load is spread over enough members
  that the per-member limit never binds: R msg/s for T s over U members gives each
  member R·T/U messages, and R·60/U ≤ 30 needs U ≥ 2R (10,000 members cover
  5,000 msg/s). The outbound phase measures the sender *against* the limits.
- **Outbound.** (a) One member is sent 45 messages at once under WeCom's
  per-member limit of 30 a minute: the sender must deliver exactly 30 in the first
  window and the rest only after it, with nothing dropped by the simulator (which,
  like WeCom, drops the excess silently). Achieved / limit is the delivered count in
  the first 60 s over 30. (b) A bulk backlog is pushed through the push API
  (` + "`priority: bulk`" + `, one message per member), then urgent messages are pushed
  while it drains; their latency is push → delivered, next to how long the bulk
  backlog took.
- **Cost.** ` + "`bin/wxhub run`" + ` runs as a child process with a generated config (all
  components, embedded NATS). CPU is utime+stime from /proc/<pid>/stat (clock ticks
  of 10 ms), memory is VmRSS from /proc/<pid>/status, sampled every 250 ms: idle,
  then under a constant e2e load. CPU per 1,000 messages counts the whole hub
  process (gateway, router, echo connector, sender, embedded NATS) for each
  message's full round trip, less what it spends idle over the same span. Under
  load the hub's /metrics is read every 5 s for the live heap after the last
  collection (go_gc_heap_live_bytes) and the collector's CPU; a read costs the
  hub 10-25 ms of CPU.
- **Soak.** Memory growth over a long run is not part of the default bench
  (bounded to a few minutes); ` + "`make soak`" + ` (` + "`wxhub-bench run --phases cost --cost-rate 1000 --cost-load 10m`" + `)
  is the soak. The cost rows give the RSS and the live heap at every tenth of
  the load and the highest of each in every fifth: the server keeps each
  Nats-Msg-Id for the duplicate window (2 min) and frees its list of ids only
  once it holds three times the live ones, so memory climbs for about three
  windows and then swings within a bound set by the rate.
`
