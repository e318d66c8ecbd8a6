package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/wecom/sim"
	"github.com/wxhub/wxhub/wecom/sim/load"
)

const (
	limitedUser  = "limited"
	limitPushes  = 45 // 1.5 × WeCom's per-member minute
	urgentCount  = 20
	urgentPeriod = 100 * time.Millisecond
)

// pusher posts to the hub's push API.
type pusher struct {
	c   *resty.Client
	url string
}

func newPusher(base string, conc int) *pusher {
	tr := &http.Transport{Proxy: nil, MaxIdleConns: conc + 4, MaxIdleConnsPerHost: conc + 4, IdleConnTimeout: 30 * time.Second}
	return &pusher{c: resty.New().SetTransport(tr).SetTimeout(10 * time.Second).SetAuthToken(benchAPIKey),
		url: base + "/api/v1/messages"}
}

func (p *pusher) push(ctx context.Context, app, user, content, priority string) error {
	body := map[string]any{"app": app, "touser": user, "msgtype": "text", "text": map[string]string{"content": content}, "priority": priority}
	resp, err := p.c.R().SetContext(ctx).SetBody(body).Post(p.url)
	if err != nil {
		return err
	}
	if resp.StatusCode() != http.StatusAccepted {
		return fmt.Errorf("push: %d %s", resp.StatusCode(), strings.TrimSpace(resp.String()))
	}
	return nil
}

func runOutbound(ctx context.Context, o *Options, rep *Report) error {
	bulkUsers := load.Users("u", o.OutboundBulk)
	urgentUsers := load.Users("urgent", urgentCount)
	users := append(append(append([]string(nil), bulkUsers...), urgentUsers...), limitedUser)
	e, err := newEnv(ctx, o, envSpec{users: users, simLimits: simNoCorpLimits, tune: noCorpLimits})
	if err != nil {
		return err
	}
	defer e.close()
	app := e.target.App
	p := newPusher(e.target.URL, 32)
	defer p.c.GetClient().CloseIdleConnections()

	// (a) The per-member limit: 45 messages to one member at once.
	limitStart := time.Now()
	for i := 0; i < limitPushes; i++ {
		if err := p.push(ctx, app, limitedUser, fmt.Sprintf("limit #%d", i), "normal"); err != nil {
			return err
		}
	}
	o.progressf(PhaseOutbound, "queued %d messages for one member (limit 30 a minute)", limitPushes)

	// (b) A bulk backlog, and urgent messages pushed while it drains.
	bulkAt := make([]time.Time, len(bulkUsers))
	var next, accepted atomic.Int64
	var pushErr atomic.Value
	var wg sync.WaitGroup
	bulkStart := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(bulkUsers) {
					return
				}
				bulkAt[i] = time.Now()
				if err := p.push(ctx, app, bulkUsers[i], fmt.Sprintf("bulk #%d", i), "bulk"); err != nil {
					pushErr.CompareAndSwap(nil, err)
					return
				}
				accepted.Add(1)
			}
		}()
	}
	// Urgent messages start once a fifth of the bulk is queued.
	for accepted.Load() < int64(len(bulkUsers)/5) && pushErr.Load() == nil && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	urgentAt := make([]time.Time, urgentCount)
	backlog := make([]int64, urgentCount)
	tick := time.NewTicker(urgentPeriod)
	for i := 0; i < urgentCount && ctx.Err() == nil; i++ {
		<-tick.C
		backlog[i] = accepted.Load() - int64(bulkDelivered(e.sim))
		urgentAt[i] = time.Now()
		if err := p.push(ctx, app, urgentUsers[i], fmt.Sprintf("urgent #%d", i), "urgent"); err != nil {
			tick.Stop()
			return err
		}
	}
	tick.Stop()
	wg.Wait()
	if v := pushErr.Load(); v != nil {
		return v.(error)
	}
	pushTook := time.Since(bulkStart)
	o.progressf(PhaseOutbound, "pushed %s bulk in %s and %d urgent; waiting for delivery", thousands(int64(len(bulkUsers))),
		pushTook.Round(100*time.Millisecond), urgentCount)

	// Wait for all bulk and urgent, then for the limited member's second window.
	want := len(bulkUsers) + urgentCount
	deadline := time.Now().Add(60 * time.Second)
	for countPrefix(e.sim, "bulk #", "urgent #") < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	limitDeadline := limitStart.Add(75 * time.Second)
	for len(e.sim.SentTo(limitedUser)) < limitPushes && time.Now().Before(limitDeadline) && ctx.Err() == nil {
		o.progressf(PhaseOutbound, "member limit: %d of %d delivered after %s (the rest may go after 60 s)",
			len(e.sim.SentTo(limitedUser)), limitPushes, time.Since(limitStart).Round(time.Second))
		sleepCtx(ctx, 5*time.Second)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	sent := e.sim.Sent()
	byContent := map[string]time.Time{}
	var limited []time.Time
	for _, m := range sent {
		byContent[m.Content] = m.Time
		if m.User == limitedUser {
			limited = append(limited, m.Time)
		}
	}
	urgentLat := load.NewLatencies(urgentCount)
	bulkLat := load.NewLatencies(len(bulkUsers))
	var lastBulk time.Time
	missing := 0
	for i := range urgentAt {
		if t, ok := byContent[fmt.Sprintf("urgent #%d", i)]; ok {
			urgentLat.Add(t.Sub(urgentAt[i]))
		} else {
			missing++
		}
	}
	for i := range bulkAt {
		if t, ok := byContent[fmt.Sprintf("bulk #%d", i)]; ok {
			bulkLat.Add(t.Sub(bulkAt[i]))
			if t.After(lastBulk) {
				lastBulk = t
			}
		} else {
			missing++
		}
	}
	drain := lastBulk.Sub(bulkStart)
	// The limited member: deliveries in the first window.
	first, inFirst, secondAt := time.Time{}, 0, time.Duration(0)
	if len(limited) > 0 {
		first = limited[0]
		for _, t := range limited {
			if t.Sub(first) < time.Minute {
				inFirst++
			} else if secondAt == 0 {
				secondAt = t.Sub(first)
			}
		}
	}
	dropped := 0
	for _, d := range e.sim.Dropped() {
		if d.Reason != sim.DropDuplicate {
			dropped++
		}
	}
	st := e.sim.Stats()
	errs45009 := st.Errors["45009"]
	ratio := float64(inFirst) / 30
	rep.add(Row{Area: "outbound", Measure: "per-member limit (30 a minute): delivered in the first 60 s / limit",
		Result: fmt.Sprintf("%d / 30 = %.0f%%; the 31st after %s; %d dropped by WeCom, %d × 45009", inFirst, ratio*100, secondStr(secondAt), dropped, errs45009),
		Goal:   "100%, nothing dropped", Met: met(inFirst == 30 && dropped == 0 && errs45009 == 0)})
	bulkRate := float64(bulkLat.Count()) / drain.Seconds()
	rep.add(Row{Area: "outbound", Measure: fmt.Sprintf("bulk backlog of %s: pushed, then sent", thousands(int64(len(bulkUsers)))),
		Result: fmt.Sprintf("all sent in %s (%s); bulk push→sent p50 %s", ms(drain), rate(bulkRate), ms(bulkLat.Percentile(50)))})
	maxBacklog := int64(0)
	for _, b := range backlog {
		maxBacklog = max(maxBacklog, b)
	}
	rep.add(Row{Area: "outbound", Measure: fmt.Sprintf("urgent latency under the bulk backlog (%d messages, up to %s bulk ahead)", urgentCount, thousands(maxBacklog)),
		Result: fmt.Sprintf("p50 %s, max %s", ms(urgentLat.Percentile(50)), ms(urgentLat.Max()))})
	sec := Section{Title: "Outbound: the sender against WeCom's limits",
		Header: []string{"what", "count", "p50", "p99", "max"}}
	sec.Rows = append(sec.Rows,
		[]string{"bulk: push accepted → delivered", thousands(int64(bulkLat.Count())), ms(bulkLat.Percentile(50)), ms(bulkLat.Percentile(99)), ms(bulkLat.Max())},
		[]string{"urgent during the bulk drain: push accepted → delivered", thousands(int64(urgentLat.Count())), ms(urgentLat.Percentile(50)), ms(urgentLat.Percentile(99)), ms(urgentLat.Max())})
	sec.Notes = append(sec.Notes,
		fmt.Sprintf("Bulk: %s messages (one per member, `priority: bulk`) pushed by 32 clients in %s; urgent: one every %s once a fifth of the bulk was queued. Missing deliveries: %d.",
			thousands(int64(len(bulkUsers))), ms(pushTook), urgentPeriod, missing),
		fmt.Sprintf("Per-member limit: %d messages to one member at once; the simulator counts 30 per member in any 60 s and drops the excess silently, as WeCom; the sender holds each slot 1 s longer than the window (its margin), so the 31st goes a little after 60 s.", limitPushes))
	rep.Sections = append(rep.Sections, sec)
	o.progressf(PhaseOutbound, "limit %d/30 in the first window, dropped %d; urgent p50 %s max %s; bulk drained in %s",
		inFirst, dropped, ms(urgentLat.Percentile(50)), ms(urgentLat.Max()), ms(drain))
	return nil
}

func secondStr(d time.Duration) string {
	if d == 0 {
		return "(not within the wait)"
	}
	return ms(d)
}

func bulkDelivered(s *sim.Server) int { return s.Stats().Sent }

func countPrefix(s *sim.Server, prefixes ...string) int {
	n := 0
	for _, m := range s.Sent() {
		for _, p := range prefixes {
			if strings.HasPrefix(m.Content, p) {
				n++
				break
			}
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
