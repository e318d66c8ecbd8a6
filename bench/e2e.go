package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wxhub/wxhub/wecom/sim/load"
)

// e2eStep is what one offered rate gave.
type e2eStep struct {
	offered    float64
	sent, ok   int
	failed     int
	replies    int
	missing    int
	dups       int
	lat        *load.Latencies
	answer     *load.Latencies
	achieved   float64 // replies per second over the step
	sustained  bool
	errSummary string
	legs       *legs // nil when the streams could not be read
	rssPeak    int64 // the child hub's peak RSS over the step; 0 in process
	natsPeak   int64 // the external NATS server's peak RSS; 0 without one
}

// sustainedP99 is the latency above which a rate does not count as sustained.
const sustainedP99 = time.Second

func runE2E(ctx context.Context, o *Options, rep *Report) error {
	users := load.Users("u", o.Users)
	// The hub runs as `wxhub run` in a process of its own: in this one, every
	// garbage collection of the generator's and the simulator's heap (all the
	// prepared requests, every reply recorded) would stall the hub as well.
	e, err := newEnv(ctx, o, envSpec{users: users, simLimits: simNoCorpLimits, tune: noCorpLimits, child: !o.InProcess})
	if err != nil {
		return err
	}
	defer e.close()
	// Warm up: tokens fetched, consumers created, connections open.
	if _, err := e.sim.Say(ctx, e.target.App, users[0], "echo warm-up"); err != nil {
		return fmt.Errorf("warm-up callback: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = e.sim.WaitSent(wctx, func(m simSent) bool { return m.User == users[0] })
	cancel()
	if err != nil {
		return fmt.Errorf("warm-up reply: %w", err)
	}

	var timeline io.Writer // stays a nil interface without --latencies
	if o.Latencies != "" {
		f, err := os.Create(o.Latencies)
		if err != nil {
			return fmt.Errorf("--latencies: %w", err)
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		defer w.Flush()
		fmt.Fprintln(w, "# offered/s due_unix_us latency_us ingest_us middle_us outbound_us (legs: see legs in bench/hops.go; - when not split)")
		timeline = w
	}

	var steps []e2eStep
	best, failed := 0.0, false
	offset := 0
	for _, r := range o.Rates {
		if ctx.Err() != nil {
			break
		}
		st, err := e2eStepRun(ctx, o, e, users, r, offset, timeline)
		if err != nil {
			return err
		}
		offset += st.sent
		steps = append(steps, st)
		o.progressf(PhaseE2E, "%s offered: %d/%d replies, p50 %s p99 %s p99.9 %s, hub RSS peak %s, %s", rate(r), st.replies, st.ok,
			ms(st.lat.Percentile(50)), ms(st.lat.Percentile(99)), ms(st.lat.Percentile(99.9)), rssCell(st.rssPeak, st.natsPeak),
			map[bool]string{true: "sustained", false: "NOT sustained"}[st.sustained])
		if !st.sustained {
			failed = true
			if !o.AllRates {
				break
			}
		}
		if !failed {
			best = r
		}
	}
	sec := Section{Title: "End to end: callback → router → echo connector → sender → WeCom (simulator)",
		Header: []string{"offered", "callbacks", "replies", "achieved", "p50", "p99", "p99.9", "max", "callback answer p99", "hub RSS peak", "errors", "sustained"}}
	for _, st := range steps {
		sec.Rows = append(sec.Rows, []string{rate(st.offered), thousands(int64(st.sent)), thousands(int64(st.replies)),
			rate(st.achieved), ms(st.lat.Percentile(50)), ms(st.lat.Percentile(99)), ms(st.lat.Percentile(99.9)),
			ms(st.lat.Max()), ms(st.answer.Percentile(99)), rssCell(st.rssPeak, st.natsPeak), st.errSummary, met(st.sustained)})
		goal, ok := "", ""
		if st.offered == 1000 {
			goal, ok = "p99 < 20 ms", met(st.lat.Percentile(99) < 20*time.Millisecond && st.sustained)
		}
		rep.add(Row{Area: "e2e", Measure: fmt.Sprintf("latency at %s offered (p50 / p99 / p99.9)", rate(st.offered)),
			Result: fmt.Sprintf("%s / %s / %s", ms(st.lat.Percentile(50)), ms(st.lat.Percentile(99)), ms(st.lat.Percentile(99.9))),
			Goal:   goal, Met: ok})
		if st.offered == 1000 && st.rssPeak > 0 {
			rep.add(Row{Area: "e2e", Measure: "`wxhub run` resident memory at 1,000/s offered (peak over the step)",
				Result: mib(st.rssPeak), Goal: "< 200 MiB", Met: met(st.rssPeak < 200<<20)})
		}
	}
	bestS := "none of the rates tried"
	if best > 0 {
		bestS = rate(best)
		if best == o.Rates[len(o.Rates)-1] {
			bestS += " (the highest rate tried)"
		}
	}
	rep.add(Row{Area: "e2e", Measure: "highest offered rate sustained", Result: bestS})
	sec.Notes = append(sec.Notes,
		fmt.Sprintf("%s per rate, %s grace, %s members writing in turn, text \"echo lg#<n>\" answered by the echo connector. Sustained: every reply within the grace, no failed callback, p99 < %s.",
			o.StepDuration, o.Grace, thousands(int64(o.Users)), ms(sustainedP99)),
		"Corp API ceilings and the daily quota are off in the simulator and the sender for this phase (see below); the per-member limits are WeCom's.")
	rep.Sections = append(rep.Sections, sec, legsSection(steps))
	return nil
}

// legsSection tabulates each step's legs (see legs).
func legsSection(steps []e2eStep) Section {
	sec := Section{Title: "End to end, leg by leg",
		Header: []string{"offered", "due → stored in WXHUB_IN (p50 / p99)", "WXHUB_IN → reply stored in WXHUB_OUT (p50 / p99)", "WXHUB_OUT → at the simulator (p50 / p99)", "replies split"}}
	pp := func(l *load.Latencies) string {
		return fmt.Sprintf("%s / %s", ms(l.Percentile(50)), ms(l.Percentile(99)))
	}
	for _, st := range steps {
		if st.legs == nil {
			sec.Rows = append(sec.Rows, []string{rate(st.offered), "not measured", "", "", ""})
			continue
		}
		sec.Rows = append(sec.Rows, []string{rate(st.offered), pp(st.legs.ingest), pp(st.legs.middle), pp(st.legs.outbound),
			thousands(int64(st.legs.ingest.Count()))})
	}
	sec.Notes = append(sec.Notes, "Each reply's latency split where its messages were stored: the event in WXHUB_IN "+
		"(generator, HTTP, gateway), its reply in WXHUB_OUT (router, WXHUB_ROUTE, echo connector), the reply at the "+
		"simulator (sender, WeCom call), by JetStream's timestamps (the same wall clock as the generator's; a step of that clock during the run, "+
		"common on VMs, shows as a negative leg). Each leg's "+
		"percentiles are its own: the legs' p99s need not add up to the end-to-end p99.")
	return sec
}

// e2eStepRun offers rate r for o.StepDuration; timeline, when not nil, gets a
// line per reply.
func e2eStepRun(ctx context.Context, o *Options, e *env, users []string, r float64, offset int, timeline io.Writer) (e2eStep, error) {
	st := e2eStep{offered: r}
	n := int(r*o.StepDuration.Seconds()) + 1
	// Rotate the members so that successive steps start where the last ended:
	// every member gets its share before anyone gets a second one.
	rot := append(append([]string(nil), users[offset%len(users):]...), users[:offset%len(users)]...)
	cfg := load.Config{Target: e.target, Users: rot, Rate: r, Duration: o.StepDuration,
		Mix: load.Mix{load.KindText: 1}, TextPrefix: "echo ",
		Progress: func(p load.Progress) {
			o.progressf(PhaseE2E, "%s %2.0fs: %s sent, %s answered, %d failed, %d in flight, %s replies; %s", rate(r),
				p.Elapsed.Seconds(), thousands(p.Sent), thousands(p.OK), p.Failed, p.InFlight, thousands(int64(e.rec.Count())),
				backlog(ctx, e.hub.Bus))
		}}
	reqs, err := load.Prepare(cfg, n)
	if err != nil {
		return st, err
	}
	e.rec.Reset()
	marks, markErr := markStreams(ctx, e.hub.Bus)
	g, err := load.New(cfg)
	if err != nil {
		return st, err
	}
	defer g.Close()
	var smp, natsSmp *sampler
	if e.child != nil {
		smp = startSampler(e.child.pid, "")
		if e.child.natsPID != 0 {
			natsSmp = startSampler(e.child.natsPID, "")
		}
	}
	defer func() {
		for _, s := range []*sampler{smp, natsSmp} {
			if s != nil {
				s.close()
			}
		}
	}()
	res, err := g.Run(ctx, reqs)
	if err != nil {
		return st, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.Grace)
	e.rec.WaitCount(wctx, res.OK)
	cancel()
	if smp != nil {
		_, st.rssPeak, _, _ = smp.window()
	}
	if natsSmp != nil {
		_, st.natsPeak, _, _ = natsSmp.window()
	}
	st.sent, st.ok, st.failed = res.Sent, res.OK, res.Failed
	st.lat, st.missing = e.rec.EndToEnd(reqs, res)
	var times *storedTimes
	if markErr == nil {
		// Read after the grace: the replies have all been stored by then.
		if t, err := readStoredTimes(ctx, e.hub.Bus, marks); err == nil {
			times = &t
		} else {
			o.progressf(PhaseE2E, "legs of %s not measured: %v", rate(r), err)
		}
	}
	st.legs = measureLegs(times, reqs, res, e.rec, r, timeline)
	st.replies, st.dups = st.lat.Count(), e.rec.Duplicates()
	st.answer = res.Latency
	st.errSummary = res.ErrorSummary()
	if st.dups > 0 {
		st.errSummary += fmt.Sprintf("; %d duplicate replies", st.dups)
	}
	span := o.StepDuration
	if st.lat.Count() > 0 {
		span += st.lat.Max() // the last reply came at most this late after its due time
	}
	st.achieved = float64(st.replies) / span.Seconds()
	st.sustained = st.missing == 0 && st.failed == 0 && st.replies > 0 && st.lat.Percentile(99) < sustainedP99
	return st, nil
}

// rssCell is the child hub's peak RSS (and the external NATS server's), or
// "-" for a hub in the bench process (whose RSS would count the generator's).
func rssCell(hub, nats int64) string {
	switch {
	case hub <= 0:
		return "-"
	case nats > 0:
		return mib(hub) + " + NATS " + mib(nats)
	}
	return mib(hub)
}
