package sender

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/internal/promreg"
	"github.com/wxhub/wxhub/wecom"
)

// WithRegisterer registers the sender's metrics (docs/metrics.md) with r.
// Default: a private registry, i.e. nowhere anyone scrapes. Several senders
// may share r: the second finds the first one's collectors and adds to them.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Sender) { s.reg = r } }

// Results of wxhub_sender_sends_total.
const (
	resultSent     = "sent"     // WeCom accepted it
	resultRetry    = "retry"    // the attempt failed; the message waits for another
	resultFailed   = "failed"   // given up: in WXHUB_DLQ
	resultDeferred = "deferred" // held for the recipients' quiet hours
)

// Labels of deferrals and of the limits a message waited for.
const (
	reasonQuietHours = "quiet_hours"
	reasonLimit      = "limit"
	reasonFrequency  = "frequency" // WeCom said 45009: the app's sends pause
)

type metrics struct {
	sends         *prometheus.CounterVec
	sendSeconds   *prometheus.HistogramVec
	limiterWaits  *prometheus.CounterVec
	limiterWait   *prometheus.HistogramVec
	deferrals     *prometheus.CounterVec
	tokenRefresh  *prometheus.CounterVec
	backlog       *prometheus.GaugeVec
	e2e           *prometheus.HistogramVec
	ipNotTrusted  *prometheus.CounterVec
	pauses        *prometheus.CounterVec
	pauseUntil    *prometheus.GaugeVec
	takeoverWait  prometheus.Histogram
	barrierGiveUp prometheus.Counter
	limitUsageDsc *prometheus.Desc
}

func newMetrics(reg prometheus.Registerer, s *Sender) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		sends: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_sender_sends_total",
			Help: "Outcomes of send attempts by app, result (sent, retry, failed, deferred) and WeCom errcode (0 when sent; bad_input, network, http_<status>, ... when WeCom gave none).",
		}, []string{"app", "result", "errcode"})),
		sendSeconds: promreg.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxhub_sender_send_seconds",
			Help:    "Duration of one WeCom send API call (message/send, appchat/send, update_template_card).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"app"})),
		limiterWaits: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_sender_limiter_waits_total",
			Help: "Times a message was held back because a send limit was full, by app and limit.",
		}, []string{"app", "limit"})),
		limiterWait: promreg.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxhub_sender_limiter_wait_seconds",
			Help:    "How long a full send limit holds a message back, by limit.",
			Buckets: []float64{.1, .5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"limit"})),
		deferrals: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_sender_deferrals_total",
			Help: "Messages put off, by app and reason (quiet_hours, limit, frequency).",
		}, []string{"app", "reason"})),
		pauses: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_sender_pauses_total",
			Help: "Distinct WeCom frequency-limit (45009) events that paused an app's sends, by app; a burst of concurrent answers counts once.",
		}, []string{"app"})),
		pauseUntil: promreg.MustRegister(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxhub_sender_paused_until_seconds",
			Help: "Unix time when the app's current 45009 pause ends (in the past: sending).",
		}, []string{"app"})),
		tokenRefresh: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_sender_token_refreshes_total",
			Help: "gettoken calls by app and result (ok, refused: secret or IP rejected, error: network or WeCom busy).",
		}, []string{"app", "result"})),
		backlog: promreg.MustRegister(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxhub_sender_backlog",
			Help: "Messages this sender holds (fetched, not yet sent, failed or handed back), by priority.",
		}, []string{"priority"})),
		e2e: promreg.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxhub_e2e_latency_seconds",
			Help:    "From the gateway receiving a WeChat event to WeCom accepting the reply, by app (replies only; quiet hours included).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 3600},
		}, []string{"app"})),
		ipNotTrusted: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_sender_ip_not_trusted_total",
			Help: "WeCom answers 60020 (this server's IP is not on the app's trusted IP list), by app.",
		}, []string{"app"})),
		takeoverWait: promreg.MustRegister(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxhub_sender_takeover_wait_seconds",
			Help:    "After this sender was pinned (took over), how long it held dispatch until the previous holder's messages were back.",
			Buckets: []float64{.01, .1, .5, 1, 2, 5, 10, 20, 30, 60, 120},
		})),
		barrierGiveUp: promreg.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxhub_sender_takeover_barrier_timeouts_total",
			Help: "Takeovers after which this sender stopped waiting for the previous holder's messages at the safety bound (per-member order may break once).",
		})),
		limitUsageDsc: prometheus.NewDesc("wxhub_sender_limit_usage",
			"Use of each send limit as seen by this sender: hits in the current window / the limit (1 = full), by app, corp and limit. "+
				"member_* and chat_minute: the fullest member or chat of the app; <api>_minute/_hour: corp-wide, app=\"*\", against the corp's own limit; daily: today's recipients.",
			[]string{"app", "corp", "limit"}, nil),
	}
	promreg.MustRegister(reg, prometheus.Collector(&limitUsage{s: s, desc: m.limitUsageDsc}))
	for _, p := range []string{"urgent", "normal", "bulk"} {
		m.backlog.WithLabelValues(p) // shown at 0 from the start
	}
	return m
}

var classNames = [numClasses]string{classUrgent: "urgent", classNormal: "normal", classBulk: "bulk"}

// errCode is the errcode label of err: WeCom's code, or what went wrong
// before WeCom could answer.
func errCode(err error) string {
	var ae *wecom.APIError
	var he *wecom.HTTPError
	var te *wecom.TransportError
	switch {
	case err == nil:
		return "0"
	case errors.As(err, &ae):
		return strconv.Itoa(ae.Code)
	case errors.As(err, &he):
		return "http_" + strconv.Itoa(he.Status)
	case errors.As(err, &te):
		return "network"
	case errors.Is(err, wecom.ErrBadResponse):
		return "bad_response"
	case errors.Is(err, ErrBadMessage), errors.Is(err, ErrUnknownApp):
		return "bad_input"
	case errors.Is(err, ErrNeverFits):
		return "never_fits"
	case errors.Is(err, ErrBadSecret):
		return "bad_secret"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "other"
}

const (
	codeIPNotTrusted   = 60020 // WeCom: not on the app's trusted IPs
	codeMPIPNotAllowed = 40164 // Official Account: not on the account's IP whitelist
)

func isIPNotTrusted(err error) bool {
	var me *wecom.MPError
	if errors.As(err, &me) {
		return me.Code == codeMPIPNotAllowed
	}
	var ae *wecom.APIError
	return errors.As(err, &ae) && ae.Code == codeIPNotTrusted
}

func (s *Sender) countSend(app, result string, err error) {
	s.m.sends.WithLabelValues(app, result, errCode(err)).Inc()
}

// observeE2E records the reply's latency from its event's arrival (wall clock:
// the gateway stamped it with its own).
func (s *Sender) observeE2E(j *job) {
	et := j.out.Data.EventTime
	if et == nil || et.IsZero() {
		return
	}
	d := time.Since(*et)
	if d < 0 {
		d = 0 // the gateway's clock is ahead of ours
	}
	s.m.e2e.WithLabelValues(j.app.Name).Observe(d.Seconds())
}

// limitName is the limit label of the rule that kept claim c waiting.
func limitName(c *claim, ruleName string) string {
	if c.daily > 0 {
		return "daily"
	}
	win := ruleName
	switch ruleName {
	case "m":
		win = "minute"
	case "h":
		win = "hour"
	}
	scope, rest, _ := strings.Cut(c.key, ".")
	if scope == "corp" { // corp.<api> or corp.<corp>.<api>
		return rest[strings.LastIndex(rest, ".")+1:] + "_" + win // message_send_minute, appchat_send_hour, ...
	}
	return scope + "_" + win // member_minute, chat_minute, ...
}

// limitUsage computes wxhub_sender_limit_usage at scrape time from the
// limiter's cached ledgers: this replica's view, fresh as of its last
// reservation on each key (another replica's sends show after the next
// compare-and-set conflict).
//
// A scrape also drops from the cache the ledgers with nothing left in any
// window (limiter.forget), so the cache and each scrape's work follow the
// members messaged recently, not every member ever messaged.
type limitUsage struct {
	s    *Sender
	desc *prometheus.Desc
}

func (u *limitUsage) Describe(ch chan<- *prometheus.Desc) { ch <- u.desc }

func (u *limitUsage) Collect(ch chan<- prometheus.Metric) {
	s := u.s
	s.mu.Lock()
	lim := s.lim
	s.mu.Unlock()
	if lim == nil {
		return // not running yet
	}
	appOf := map[string]string{}
	corpOf := map[string]string{} // app -> corp ("" for an Official Account)
	for _, a := range s.cfg.Apps {
		appOf[dnd.Key(a.Name)] = a.Name
		if !a.mp() {
			corpOf[a.Name] = a.CorpID
		}
	}
	now := s.clock.Now()
	type lk struct{ app, corp, limit string }
	fullest := map[lk]float64{}
	put := func(k lk, v float64) {
		if cur, ok := fullest[k]; !ok || v > cur {
			fullest[k] = v
		}
	}
	// Every configured limit shows, even before its first send.
	for _, a := range s.cfg.Apps {
		corp := corpOf[a.Name]
		for _, r := range s.memberRules {
			if r.Limit > 0 {
				put(lk{a.Name, corp, limitName(&claim{key: "member."}, r.Name)}, 0)
			}
		}
		for _, r := range s.chatRules {
			if r.Limit > 0 {
				put(lk{a.Name, corp, limitName(&claim{key: "chat."}, r.Name)}, 0)
			}
		}
		if s.cfg.Limits.AppDailyRecipients > 0 {
			put(lk{a.Name, corp, "daily"}, 0)
		}
	}
	for _, corp := range s.corpIDs() { // each corp's corp-wide limits
		for _, api := range []string{"message_send", "appchat_send", "update_template_card"} {
			for _, r := range s.corpRulesFor(corp) {
				if r.Limit > 0 {
					put(lk{"*", corp, limitName(&claim{key: "corp." + api}, r.Name)}, 0)
				}
			}
		}
	}
	var idle []idleKey
	for _, e := range lim.snapshot() {
		scope, rest, _ := strings.Cut(e.key, ".")
		app, corp := "*", ""
		var rules []rule
		switch scope {
		case "corp":
			var ok bool
			if corp, _, ok = s.corpOfKey(e.key); !ok {
				continue // a corp no longer configured
			}
			rules = s.corpRulesFor(corp)
		case "member", "chat", "daily":
			ak, _, _ := strings.Cut(rest, ".")
			if app = appOf[ak]; app == "" {
				continue // an app no longer configured
			}
			corp = corpOf[app]
			rules = s.memberRules
			if scope == "chat" {
				rules = s.chatRules
			}
		default:
			continue
		}
		if scope == "daily" {
			var d dailyCount
			q := s.cfg.Limits.AppDailyRecipients
			if q > 0 && json.Unmarshal(e.val, &d) == nil && d.Day == now.In(s.loc).Format("20060102") {
				put(lk{app, corp, "daily"}, float64(d.N)/float64(q))
			}
			continue
		}
		v := e.view
		if v == nil {
			continue
		}
		if v.empty(now, rules, lim.margin) {
			idle = append(idle, idleKey{e.key, e.rev})
			continue // 0 under every rule, and every limit shows from start-up
		}
		c := &claim{key: e.key}
		for _, r := range rules {
			if r.Limit > 0 {
				put(lk{app, corp, limitName(c, r.Name)}, float64(v.used(now, r, lim.margin))/float64(r.Limit))
			}
		}
	}
	lim.forget(idle)
	for k, v := range fullest {
		ch <- prometheus.MustNewConstMetric(u.desc, prometheus.GaugeValue, v, k.app, k.corp, k.limit)
	}
}

// ipNotTrusted says plainly what 60020 means and counts it: every call of the
// app fails until an admin adds this server's IP in the WeCom console.
func (s *Sender) ipNotTrusted(app string, err error) {
	s.m.ipNotTrusted.WithLabelValues(app).Inc()
	var me *wecom.MPError
	if errors.As(err, &me) {
		s.log.Error("WeChat refuses calls from this server's IP (errcode 40164): add the server's outbound IP to the Official Account's IP whitelist (Settings and Development > Basic configuration)",
			zap.String("app", app), zap.Error(err))
		return
	}
	s.log.Error("WeCom refuses calls from this server's IP (errcode 60020): add the server's outbound IP to the app's trusted IPs in the WeCom admin console",
		zap.String("app", app), zap.Error(err))
}

// tokenFetched counts one gettoken call (tokens.onFetch).
func (s *Sender) tokenFetched(app string, err error) {
	result := "ok"
	switch {
	case err == nil:
	case s.api.badSecret(err):
		result = "refused"
	default:
		result = "error"
	}
	s.m.tokenRefresh.WithLabelValues(app, result).Inc()
	if isIPNotTrusted(err) {
		s.ipNotTrusted(app, err)
	}
}
