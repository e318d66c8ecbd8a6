// Package sender is the outbound queue: the only component that calls WeCom's
// send APIs. It consumes WXHUB_OUT, keeps WeCom's send limits across replicas
// (sliding-window ledgers in the wxhub_limits KV bucket), sends urgent before
// normal before bulk with round-robin fairness between recipients, holds
// non-urgent messages back during a member's quiet hours, shares one access
// token per app between replicas, retries with backoff and jitter, records each
// message's status in wxhub_status and dead-letters what cannot be sent.
// See docs/outbound.md.
package sender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/wecom"
)

// Errors a message can fail with before any call to WeCom (bad input). Such a
// message goes straight to WXHUB_DLQ with the reason.
var (
	ErrBadMessage = errors.New("sender: bad outbound message")
	ErrUnknownApp = errors.New("sender: unknown app")
)

// DLQStage is the stage name of the sender's dead letters (wxhub.dlq.sender).
const DLQStage = "sender"

// Option tunes New.
type Option func(*Sender)

// WithClock sets the business clock (send windows, quiet hours, backoff, token
// expiry). Default: the system clock.
func WithClock(c Clock) Option { return func(s *Sender) { s.clock = c } }

// WithMPClient sets the Official Account API client. Default: one for
// Config.MPAPIBase, made when an Official Account is configured.
func WithMPClient(c *wecom.MPClient) Option { return func(s *Sender) { s.mpapi = mpClient{c} } }

// WithRand sets the jitter source (tests: a constant). Default math/rand/v2.
func WithRand(f func() float64) Option { return func(s *Sender) { s.rnd = f } }

// Sender consumes WXHUB_OUT and sends to WeCom. Create with New, start with Run.
type Sender struct {
	cfg    Config
	bus    *bus.Bus
	api    wecomAPI
	mpapi  wecomAPI // Official Accounts; nil when none is configured
	log    *zap.Logger
	clock  Clock
	rnd    func() float64
	reg    prometheus.Registerer
	m      *metrics
	loc    *time.Location
	defDND *dnd.Window

	status *StatusStore
	stq    *statusQueue // status writes off the send path
	dups   *dupGuard    // which message/send requests carry enable_duplicate_check
	dnd    *dnd.Store
	dndKV  jetstream.KeyValue
	tokens *tokens
	lim    *limiter
	media  *media // media objects -> WeCom media ids; media/get service (media.go)

	memberRules, chatRules, corpRules []rule
	corpRulesBy                       map[string][]rule // several corps: each corp's corp-wide rules (corps.go)
	bulkMemberRules                   []rule            // memberRules less the urgent reserve, same logs

	mu       sync.Mutex
	sched    *scheduler
	held     map[*job]struct{} // every message not yet acked or handed back
	dndCache map[string]dnd.Setting
	pauses   *pauses // per-app pauses after 45009 (pause.go)
	wake     chan struct{}

	cons       jetstream.Consumer
	cc         jetstream.ConsumeContext
	pinID      string  // the server's pin of this process on the consumer
	barrier    barrier // no dispatch while the previous holder's messages come back
	barrierGen uint64  // counts takeovers: the barrier belongs to the latest
	unpinned   bool    // this process lost its pin: what it puts back goes back to JetStream
	limitsKV   jetstream.KeyValue
	parked     map[uint64]time.Time // park records: stream seq -> redelivery (server time)

	// passiveKV: the Official Account passive-reply records (mp_passive.go).
	passiveKV bus.KVHandle
}

// job is one WXHUB_OUT message in the sender's hands.
type job struct {
	msg      jetstream.Msg
	out      schemas.Outbound
	app      App
	body     map[string]json.RawMessage
	users    []string // touser split; nil for @all
	wide     bool     // @all, toparty or totag: recipients unknown here
	chatID   string
	cls      int
	attempts int
	lastErr  string
	quietAt  time.Time // deferral already recorded in status until this
	inFlight bool
	flagged  bool // the last message/send carried enable_duplicate_check
}

// New checks cfg and prepares the sender; it does not consume until Run.
// client is a *wecom.Client pointed at WeCom (or the simulator).
func New(cfg Config, b *bus.Bus, client *wecom.Client, log *zap.Logger, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil || client == nil {
		return nil, fmt.Errorf("%w: bus and WeCom client are required", ErrConfig)
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	s := &Sender{
		cfg:      cfg,
		bus:      b,
		api:      wecomClient{client},
		log:      log.Named("sender"),
		clock:    SystemClock{},
		sched:    newScheduler(),
		held:     map[*job]struct{}{},
		dndCache: map[string]dnd.Setting{},
		parked:   map[uint64]time.Time{},
		wake:     make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(s)
	}
	s.media = &media{client: client, bus: b, clock: s.clock, log: s.log}
	if s.mpapi == nil {
		for _, a := range cfg.Apps {
			if a.mp() {
				s.mpapi = mpClient{wecom.NewMPClient(cfg.MPAPIBase)}
				break
			}
		}
	}
	s.m = newMetrics(s.reg, s)
	s.dups = newDupGuard(cfg.DuplicateCheckInterval, cfg.DuplicateRecordMax, s.clock.Now())
	s.pauses = newPauses(s.cfg.Retry.Base, s.cfg.Retry.MaxPause, s.rnd)
	s.loc, _ = time.LoadLocation(cfg.TimeZone) // checked by Validate
	if cfg.QuietHours != "" {
		w, _ := dnd.ParseWindow(cfg.QuietHours)
		s.defDND = &w
	}
	l := cfg.Limits
	s.memberRules = []rule{
		{Name: "m", Limit: l.PerMemberMinute, Span: time.Minute},
		{Name: "h", Limit: l.PerMemberHour, Span: time.Hour, Res: time.Minute},
	}
	s.bulkMemberRules = []rule{
		{Name: "m", Limit: bulkLimit(l.PerMemberMinute, l.UrgentReserve), Span: time.Minute},
		{Name: "h", Limit: bulkLimit(l.PerMemberHour, l.UrgentReserve), Span: time.Hour, Res: time.Minute},
	}
	s.chatRules = []rule{{Name: "m", Limit: l.ChatPerMinute, Span: time.Minute}}
	s.corpRules = []rule{
		{Name: "m", Limit: l.CorpAPIMinute, Span: time.Minute, Res: time.Second},
		{Name: "h", Limit: l.CorpAPIHour, Span: time.Hour, Res: time.Minute},
	}
	s.initCorps()
	return s, nil
}

// Run consumes WXHUB_OUT until ctx is cancelled, then lets the calls in flight
// finish, hands the held messages back to JetStream and returns nil. Messages
// are acked only after WeCom accepted them (or they reached WXHUB_DLQ), so a
// killed process loses nothing: its un-acked messages are redelivered.
func (s *Sender) Run(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := s.watchDND(watchCtx); err != nil {
		return err
	}
	if err := s.watchParked(watchCtx); err != nil { // takeover.go
		return err
	}
	stopFetch, err := s.serveFetch(ctx)
	if err != nil {
		return err
	}
	defer stopFetch()
	stopClicks, err := s.watchClicks(ctx) // cards.go
	if err != nil {
		return err
	}
	defer stopClicks()
	if err := s.declare(ctx, 0); err != nil {
		return err
	}
	if err := s.consume(); err != nil {
		return fmt.Errorf("sender: consume: %w", err)
	}
	s.log.Info("sender running", zap.String("consumer", s.cfg.Consumer), zap.Int("workers", s.cfg.Workers))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.heartbeat(ctx) }()
	go func() { defer wg.Done(); s.guard(ctx) }()
	s.dispatch(ctx) // returns on ctx cancel, after the workers finished
	wg.Wait()
	s.mu.Lock()
	cc := s.cc
	s.mu.Unlock()
	cc.Stop()
	select { // a closed connection may never confirm the stop
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
	}
	s.handBack()
	s.stq.close()
	s.log.Info("sender stopped")
	return nil
}

func (s *Sender) open(ctx context.Context) error {
	js := s.bus.JS()
	kvL, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketLimits,
		Description: "wxhub: send-limit ledgers shared by sender replicas",
		History:     1,
		TTL:         limitsTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    s.bus.Config().Replicas,
	})
	if err != nil {
		return fmt.Errorf("sender: bucket %s: %w", BucketLimits, err)
	}
	kvT, err := s.bus.KV(ctx, bus.BucketTokens)
	if err != nil {
		return err
	}
	kvS, err := s.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return err
	}
	kvD, err := s.bus.KV(ctx, bus.BucketDND)
	if err != nil {
		return err
	}
	lim := newLimiter(kvL, s.cfg.Limits.Margin, s.loc)
	s.limitsKV = kvL
	s.mu.Lock() // the limit-usage collector may be scraping
	s.lim = lim
	s.mu.Unlock()
	s.tokens = newTokens(kvT, s.cfg.CorpID, s.api.GetToken, s.api.badSecret, s.clock, s.log)
	s.tokens.onFetch = s.tokenFetched
	if s.mpapi != nil {
		s.tokens.getMP = s.mpapi.GetToken
	}
	s.status = NewStatusStore(kvS)
	s.stq = newStatusQueue(s.status, s.log)
	s.dnd = dnd.NewStore(kvD)
	s.dndKV = kvD
	return nil
}

// Status is the store of message statuses (for the push API's GET).
func (s *Sender) Status() *StatusStore { return s.status }

// DND is the store of members' quiet hours (for the "dnd" connector).
func (s *Sender) DND() *dnd.Store { return s.dnd }

// watchDND mirrors wxhub_dnd in memory, so that checking quiet hours costs no
// KV read per message (the bucket holds one small entry per member who set one).
func (s *Sender) watchDND(ctx context.Context) error {
	w, err := s.dndKV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("sender: watch %s: %w", bus.BucketDND, err)
	}
	apply := func(e jetstream.KeyValueEntry) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(s.dndCache, e.Key())
			return
		}
		var st dnd.Setting
		if json.Unmarshal(e.Value(), &st) == nil {
			s.dndCache[e.Key()] = st
		}
	}
	followWatch(ctx, w, apply)
	return nil
}

// accept decodes one delivery and hands it to the scheduler. It is kept cheap
// (no KV access) so that an urgent message behind a long bulk backlog is seen
// within milliseconds.
func (s *Sender) accept(msg jetstream.Msg) {
	j, err := s.decode(msg)
	if err != nil {
		ctx, end := tracing.StartSpan(context.Background(), "sender.reject", msg.Headers().Get(bus.HeaderTraceParent),
			tracing.String("wxhub.id", j.out.ID))
		s.log.Warn("bad outbound message", zap.String("subject", msg.Subject()), zap.Error(err))
		s.deadLetter(ctx, j, err.Error(), err)
		end(err)
		return
	}
	t := &task{lane: j.lane(), cls: j.cls, job: j}
	s.takeOver(msg)
	s.mu.Lock()
	if md, err := msg.Metadata(); err == nil {
		t.seq = md.Sequence.Stream
	}
	s.held[j] = struct{}{}
	s.sched.push(t, s.clock.Now())
	s.mu.Unlock()
	s.m.backlog.WithLabelValues(classNames[j.cls]).Inc()
	s.kick()
}

func (s *Sender) decode(msg jetstream.Msg) (*job, error) {
	j := &job{msg: msg}
	if err := json.Unmarshal(msg.Data(), &j.out); err != nil {
		return j, fmt.Errorf("%w: not an outbound envelope: %w", ErrBadMessage, err)
	}
	d := j.out.Data
	if j.out.ID == "" {
		return j, fmt.Errorf("%w: id: empty", ErrBadMessage)
	}
	app, ok := s.cfg.app(d.App)
	if !ok {
		return j, fmt.Errorf("%w: data.app: %q is neither a WeCom app nor an Official Account with a secret", ErrUnknownApp, d.App)
	}
	j.app = app
	switch d.Priority {
	case schemas.PriorityUrgent:
		j.cls = classUrgent
	case "", schemas.PriorityNormal:
		j.cls = classNormal
	case schemas.PriorityBulk:
		j.cls = classBulk
	default:
		return j, fmt.Errorf("%w: data.priority: %q, want urgent, normal or bulk", ErrBadMessage, d.Priority)
	}
	if err := json.Unmarshal(d.Body, &j.body); err != nil || j.body == nil {
		return j, fmt.Errorf("%w: data.body: not a JSON object", ErrBadMessage)
	}
	str := func(k string) string {
		var v string
		if raw, ok := j.body[k]; ok {
			_ = json.Unmarshal(raw, &v)
		}
		return v
	}
	if app.mp() {
		return j, decodeMP(j, str)
	}
	switch d.Kind {
	case "", schemas.KindMessage:
		j.out.Data.Kind = schemas.KindMessage
		if str("msgtype") == "" {
			return j, fmt.Errorf("%w: data.body.msgtype: empty", ErrBadMessage)
		}
		touser, toparty, totag := str("touser"), str("toparty"), str("totag")
		if touser == "" && toparty == "" && totag == "" {
			return j, fmt.Errorf("%w: data.body: no touser, toparty or totag", ErrBadMessage)
		}
		j.wide = touser == "@all" || toparty != "" || totag != ""
		if touser != "" && touser != "@all" {
			j.users = splitUsers(touser)
		}
	case schemas.KindAppChat:
		if j.chatID = str("chatid"); j.chatID == "" {
			return j, fmt.Errorf("%w: data.body.chatid: empty", ErrBadMessage)
		}
	case schemas.KindCardUpdate:
		if str("response_code") == "" {
			return j, fmt.Errorf("%w: data.body.response_code: empty", ErrBadMessage)
		}
	case schemas.KindRecall:
		if str("msgid") == "" {
			return j, fmt.Errorf("%w: data.body.msgid: empty", ErrBadMessage)
		}
	case schemas.KindChatCreate:
		if j.chatID = str("chatid"); j.chatID == "" {
			return j, fmt.Errorf("%w: data.body.chatid: empty", ErrBadMessage)
		}
	case schemas.KindMPTemplate:
		return j, fmt.Errorf("%w: data.kind: %s is for Official Accounts; %q is a WeCom app", ErrBadMessage, d.Kind, app.Name)
	default:
		return j, fmt.Errorf("%w: data.kind: %q", ErrBadMessage, d.Kind)
	}
	return j, nil
}

func splitUsers(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range strings.Split(s, "|") {
		if u = strings.TrimSpace(u); u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// lane is the fairness key: one lane per class, app and recipient set (a
// group chat: one lane for every class).
func (j *job) lane() string {
	var b strings.Builder
	if j.chatID == "" {
		// A member's urgent messages overtake their bulk ones; a group chat is
		// one conversation: one lane whatever the priority, so a message never
		// overtakes an earlier one that is backing off (86003 after a creation).
		b.WriteString(strconv.Itoa(j.cls))
	}
	b.WriteByte(0)
	b.WriteString(j.app.Name)
	b.WriteByte(0)
	b.WriteString(j.out.Data.Kind)
	b.WriteByte(0)
	switch {
	case j.chatID != "":
		b.WriteString(j.chatID)
	default:
		for _, k := range []string{"touser", "toparty", "totag"} {
			b.Write(j.body[k])
			b.WriteByte(0)
		}
	}
	return b.String()
}

func (s *Sender) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatch is the one goroutine that picks messages; admission and calls run
// on up to Workers goroutines. Returns when ctx is done and the
// workers have finished.
func (s *Sender) dispatch(ctx context.Context) {
	// A slot is taken before a task is picked, so the pick happens only when a
	// worker is free and sees every task queued until then (an urgent message
	// is not stuck behind a bulk one picked early).
	slots := make(chan struct{}, s.cfg.Workers)
	// Long-lived workers rather than a goroutine per task: a new goroutine's
	// small stack would grow (be copied) on every task through admission.
	tasks := make(chan *task, s.cfg.Workers)
	var workers sync.WaitGroup
	// Calls in flight finish on shutdown: cutting them would leave WeCom's answer unknown.
	callCtx, cancelCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		close(tasks)
		workers.Wait()
		cancelCalls()
	}()
	for range s.cfg.Workers {
		workers.Go(func() {
			for t := range tasks {
				if s.admit(ctx, t) {
					s.send(callCtx, t)
				}
				<-slots
			}
		})
	}
	var armed time.Time
	var timer <-chan time.Time
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		var t *task
		for t == nil {
			if ctx.Err() != nil {
				return
			}
			now := s.clock.Now()
			s.mu.Lock()
			var wake time.Time
			// After a takeover nothing goes out until the previous holder's
			// messages are back in their lanes (wall clock: NATS time).
			held := s.barrier.on
			if !held {
				t, wake = s.sched.pick(now)
			}
			if t != nil {
				t.job.inFlight = true
			}
			s.mu.Unlock()
			if t != nil {
				break
			}
			if !wake.IsZero() && !wake.Equal(armed) {
				armed, timer = wake, s.clock.After(wake.Sub(now))
			}
			select { // the barrier's end kicks s.wake
			case <-ctx.Done():
				return
			case <-s.wake:
			case <-timer:
				armed, timer = time.Time{}, nil
			}
		}
		// Admission (quiet hours, the KV reservation) runs on the worker, not
		// here: a reservation is a KV round trip, and one at a time capped the
		// sender near 1/RTT. Lanes stay in order (a lane has one task in flight)
		// and concurrent claims on one key are group-committed by the limiter.
		tasks <- t // never blocks: a slot is held, so the buffer has room
	}
}

// admit applies quiet hours and reserves send slots. false: the task was put
// back (deferred) or finished; true: send it now.
func (s *Sender) admit(ctx context.Context, t *task) bool {
	j := t.job
	now := s.clock.Now()
	if until := s.pauses.until(j.app.Name); until.After(now) {
		s.putBack(t, until) // WeCom said 45009 to this app: its sends wait, other apps' do not
		return false
	}
	if s.passive(ctx, t, now) { // an Official Account reply the gateway may give in the callback (mp_passive.go)
		return false
	}
	if j.cls != classUrgent {
		if until, ok := s.quiet(ctx, j, now); !ok {
			return false
		} else if until.After(now) {
			s.deferQuiet(ctx, t, until, now)
			return false
		}
	}
	wait, full, err := s.lim.reserve(ctx, now, s.claims(j))
	switch {
	case errors.Is(err, ErrNeverFits):
		s.fail(ctx, t, err.Error(), err)
		return false
	case err != nil:
		// KV trouble: do not send without a reservation; try again shortly.
		s.log.Warn("limit reservation failed", zap.String("id", j.out.ID), zap.Error(err))
		s.putBack(t, now.Add(backoff(1, s.cfg.Retry.Base, s.cfg.Retry.Max, s.rnd)))
		return false
	case wait > 0:
		limit := limitName(full, full.fullRule)
		s.m.limiterWaits.WithLabelValues(j.app.Name, limit).Inc()
		s.m.limiterWait.WithLabelValues(limit).Observe(wait.Seconds())
		s.m.deferrals.WithLabelValues(j.app.Name, reasonLimit).Inc()
		s.mu.Lock()
		if full.global && len(s.corpRulesBy) == 0 {
			s.sched.pause(now.Add(wait)) // one corp: nothing else can go either; several: only this corp's lanes wait
		}
		s.mu.Unlock()
		s.putBack(t, now.Add(wait))
		return false
	}
	return true
}

// claims lists the send slots j needs. Members named in touser take a slot in
// their own per-member windows; @all, toparty and totag cannot be counted per
// member here (WeCom expands them), so they count against the corp API limits
// only — see docs/outbound.md.
func (s *Sender) claims(j *job) []claim {
	if j.app.mp() {
		// WeChat limits an account's customer-service messages by the user's
		// interactions (48-hour window, a few per interaction), which the sender
		// cannot see: it sends at once and takes 45015/45047 as final.
		return nil
	}
	app := dnd.Key(j.app.Name)
	// Per-recipient claims come before the corp-wide one: at the member limit
	// most refusals are a member's, and then the hot corp key is never touched.
	var cs []claim
	switch j.out.Data.Kind {
	case schemas.KindAppChat:
		cs = []claim{
			{key: "chat." + app + "." + dnd.Key(j.chatID), rules: s.chatRules, n: 1},
			{key: s.corpKey(j.app, "appchat_send"), rules: s.corpRulesOf(j.app), n: 1, global: true},
		}
	case schemas.KindCardUpdate:
		cs = []claim{{key: s.corpKey(j.app, "update_template_card"), rules: s.corpRulesOf(j.app), n: 1, global: true}}
	case schemas.KindRecall:
		cs = []claim{{key: s.corpKey(j.app, "message_recall"), rules: s.corpRulesOf(j.app), n: 1, global: true}}
	case schemas.KindChatCreate:
		cs = []claim{{key: s.corpKey(j.app, "appchat_create"), rules: s.corpRulesOf(j.app), n: 1, global: true}}
	default:
		cs = make([]claim, 0, len(j.users)+2)
		rules := s.memberRules
		if j.out.Data.Priority == schemas.PriorityBulk {
			rules = s.bulkMemberRules // the same logs, a lower ceiling: the rest is kept for urgent and normal
		}
		for _, u := range j.users {
			cs = append(cs, claim{key: "member." + app + "." + dnd.Key(u), rules: rules, n: 1})
		}
		cs = append(cs, claim{key: s.corpKey(j.app, "message_send"), rules: s.corpRulesOf(j.app), n: 1, global: true})
		if q := s.cfg.Limits.AppDailyRecipients; q > 0 && len(j.users) > 0 {
			cs = append(cs, claim{key: "daily." + app, n: len(j.users), daily: q})
		}
	}
	// A claim whose limits are all switched off would only cost a KV write.
	kept := cs[:0]
	for _, c := range cs {
		if c.daily > 0 || anyOn(c.rules) {
			kept = append(kept, c)
		}
	}
	return kept
}

// bulkLimit is limit less the urgent reserve, at least 1; a switched-off
// limit stays off.
func bulkLimit(limit int, reserve float64) int {
	if limit <= 0 || reserve <= 0 {
		return limit
	}
	return max(1, limit-int(math.Ceil(float64(limit)*reserve)))
}

func anyOn(rules []rule) bool {
	for _, r := range rules {
		if r.Limit > 0 {
			return true
		}
	}
	return false
}

// quiet returns when j may be sent regarding quiet hours (now: at once). When
// only some recipients are quiet, their share is split off into a new message
// (id + "-dnd") that waits on its own, and j goes to the others now; ok=false
// means j was dealt with (put back after a failed split).
func (s *Sender) quiet(ctx context.Context, j *job, now time.Time) (time.Time, bool) {
	if j.out.Data.Kind != schemas.KindMessage || j.app.mp() {
		// Chats and card updates answer an action; quiet hours are a member's
		// setting, and customers of an Official Account are no members.
		return now, true
	}
	s.mu.Lock()
	var quietUsers, loud []string
	until := time.Time{}
	for _, u := range j.users {
		st, found := s.dndCache[dnd.Key(u)]
		w, on := dnd.Effective(st, found, s.defDND)
		if on && w.Quiet(now, s.loc) {
			quietUsers = append(quietUsers, u)
			if e := w.Until(now, s.loc); until.IsZero() || e.Before(until) {
				until = e
			}
		} else {
			loud = append(loud, u)
		}
	}
	s.mu.Unlock()
	if j.wide && s.defDND != nil && s.defDND.Quiet(now, s.loc) {
		// Members behind @all/toparty/totag are unknown here: the company default applies.
		return s.defDND.Until(now, s.loc), true
	}
	if len(quietUsers) == 0 {
		return now, true
	}
	if len(loud) == 0 && !j.wide {
		return until, true
	}
	if err := s.split(ctx, j, quietUsers); err != nil {
		s.log.Warn("quiet-hours split failed", zap.String("id", j.out.ID), zap.Error(err))
		s.putBack(&task{lane: j.lane(), cls: j.cls, job: j}, now.Add(backoff(1, s.cfg.Retry.Base, s.cfg.Retry.Max, s.rnd)))
		return now, false
	}
	j.users = loud
	if len(loud) > 0 {
		j.body["touser"], _ = json.Marshal(strings.Join(loud, "|"))
	} else {
		delete(j.body, "touser")
	}
	return now, true
}

// split publishes a copy of j addressed to users only. Its id is derived from
// j's, so a retried split is de-duplicated by JetStream.
func (s *Sender) split(ctx context.Context, j *job, users []string) error {
	body := make(map[string]json.RawMessage, len(j.body))
	for k, v := range j.body {
		if k != "toparty" && k != "totag" {
			body[k] = v
		}
	}
	body["touser"], _ = json.Marshal(strings.Join(users, "|"))
	out := j.out
	out.ID = j.out.ID + "-dnd"
	out.Time = s.clock.Now()
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	out.Data.Body = raw
	// The split-off part continues the original's trace.
	ctx = bus.WithTraceParent(ctx, bus.ChildTraceParent(j.msg.Headers().Get(bus.HeaderTraceParent)))
	if _, err := s.bus.PublishJSON(ctx, j.msg.Subject(), out.ID, schemas.SchemaOutbound, out); err != nil {
		return err
	}
	s.putStatus(ctx, j, schemas.StatusQueued, fmt.Sprintf("%d recipients in quiet hours split off as %s", len(users), out.ID), nil)
	return nil
}

// deferQuiet holds t until its quiet window ends: in memory when that is near,
// else handed back to JetStream with NakWithDelay (nothing is lost, no worker
// waits, and a night of deferred bulk does not fill MaxPending).
func (s *Sender) deferQuiet(ctx context.Context, t *task, until, now time.Time) {
	j := t.job
	if !j.quietAt.Equal(until) {
		j.quietAt = until
		s.putStatus(ctx, j, schemas.StatusDeferred, "quiet hours", &until)
		s.m.deferrals.WithLabelValues(j.app.Name, reasonQuietHours).Inc()
		s.m.sends.WithLabelValues(j.app.Name, resultDeferred, "").Inc()
	}
	if d := until.Sub(now); d > s.cfg.HoldMax {
		if err := s.park(ctx, j, d); err != nil {
			s.log.Warn("nak with delay failed; holding in memory", zap.String("id", j.out.ID), zap.Error(err))
		} else {
			s.finish(t)
			return
		}
	}
	s.putBack(t, until)
}

func (s *Sender) putBack(t *task, at time.Time) {
	s.mu.Lock()
	t.job.inFlight = false
	if s.unpinned { // another process holds the pin: it takes this one too
		s.mu.Unlock()
		_ = t.job.msg.Nak()
		s.finish(t)
		return
	}
	s.sched.defer_(t, at, s.clock.Now())
	s.mu.Unlock()
	s.kick()
}

// finish removes t: acked, dead-lettered or handed back.
func (s *Sender) finish(t *task) {
	s.mu.Lock()
	_, held := s.held[t.job]
	delete(s.held, t.job)
	s.sched.done(t, s.clock.Now())
	s.mu.Unlock()
	if held {
		s.m.backlog.WithLabelValues(classNames[t.job.cls]).Dec()
	}
	s.kick()
}

// send makes the call and decides the message's fate. Each attempt is one
// span ("sender.send") in the message's trace.
func (s *Sender) send(ctx context.Context, t *task) {
	j := t.job
	ctx, end := tracing.StartSpan(ctx, "sender.send", j.msg.Headers().Get(bus.HeaderTraceParent),
		tracing.String("wxhub.id", j.out.ID), tracing.String("wxhub.app", j.app.Name),
		tracing.String("wxhub.kind", j.out.Data.Kind), tracing.Int("wxhub.attempt", j.attempts+1))
	var err error
	defer func() { end(err) }()
	if s.cancelled(ctx, j) { // recall.go
		s.dropCancelled(ctx, t)
		return
	}
	tok, err := s.tokens.Token(ctx, j.app)
	if err != nil {
		j.attempts++
		s.retry(ctx, t, err, errors.Is(err, ErrBadSecret))
		return
	}
	body := s.requestBody(j)
	api := s.apiFor(j.app)
	sentAt := s.clock.Now() // a 45009 to a request sent before the app's pause began is that pause's
	start := time.Now()
	var res sendResult
	object := objectOf(body)
	if body, err = s.media.resolve(ctx, j.app, tok, body); err == nil {
		res, err = api.send(ctx, j.out.Data.Kind, tok, body)
	}
	if isInvalidMedia(err) && object != "" {
		s.media.forget(ctx, j.app, object) // WeCom forgot it early: the retry uploads again
		err = fmt.Errorf("%w (cached media id dropped)", errRetryMedia)
	}
	s.m.sendSeconds.WithLabelValues(j.app.Name).Observe(time.Since(start).Seconds())
	if err == nil {
		s.sent(ctx, t, res)
		return
	}
	j.attempts++
	if isIPNotTrusted(err) {
		s.ipNotTrusted(j.app.Name, err)
	}
	switch api.classify(err) {
	case errToken:
		if ierr := s.tokens.Invalidate(ctx, j.app, tok); ierr != nil {
			s.log.Warn("token invalidate", zap.Error(ierr))
		}
		if j.attempts < s.cfg.Retry.MaxAttempts {
			j.lastErr = err.Error()
			s.countSend(j.app.Name, resultRetry, err)
			s.putBack(t, s.clock.Now()) // at once, with the fresh token
			return
		}
		s.retry(ctx, t, err, false)
	case errFrequency:
		now := s.clock.Now()
		if until, isNew := s.pauses.hit(j.app.Name, sentAt, now); isNew {
			s.m.pauses.WithLabelValues(j.app.Name).Inc()
			s.m.pauseUntil.WithLabelValues(j.app.Name).Set(float64(until.UnixMilli()) / 1000)
			s.log.Warn("WeCom frequency limit (45009); pausing the app's sends", zap.Duration("pause", until.Sub(now)), zap.String("app", j.app.Name))
		}
		s.m.deferrals.WithLabelValues(j.app.Name, reasonFrequency).Inc()
		s.retry(ctx, t, err, false)
	case errPermanent:
		if chatNotYetCreated(j, err) {
			s.retry(ctx, t, err, false)
			return
		}
		s.fail(ctx, t, err.Error(), err)
	default:
		s.retry(ctx, t, err, false)
	}
}

// chatNotYetCreated: a message to a chat the push API opened a moment ago may
// overtake the chat's creation (other priorities, another replica); 86003 is
// then worth the usual retries rather than a dead letter.
func chatNotYetCreated(j *job, err error) bool {
	var ae *wecom.APIError
	return j.out.Data.Kind == schemas.KindAppChat && errors.As(err, &ae) && ae.Code == 86003
}

// apiFor is the API client of app's kind.
func (s *Sender) apiFor(app App) wecomAPI {
	if app.mp() {
		return s.mpapi
	}
	return s.api
}

func (s *Sender) requestBody(j *job) map[string]json.RawMessage {
	if j.app.mp() {
		return mpRequestBody(j)
	}
	b := make(map[string]json.RawMessage, len(j.body)+3)
	for k, v := range j.body {
		b[k] = v
	}
	switch j.out.Data.Kind {
	case schemas.KindMessage:
		b["agentid"] = json.RawMessage(strconv.FormatInt(j.app.AgentID, 10))
		j.flagged = s.dups.flag(s.clock.Now(), j.app.Name, j.out.ID, j.body)
		if j.flagged {
			b["enable_duplicate_check"] = json.RawMessage("1")
			b["duplicate_check_interval"] = json.RawMessage(strconv.Itoa(int(s.cfg.DuplicateCheckInterval / time.Second)))
		}
	case schemas.KindCardUpdate:
		b["agentid"] = json.RawMessage(strconv.FormatInt(j.app.AgentID, 10))
	}
	return b
}

func (s *Sender) retry(ctx context.Context, t *task, err error, slow bool) {
	j := t.job
	j.lastErr = err.Error()
	if j.attempts >= s.cfg.Retry.MaxAttempts {
		s.fail(ctx, t, fmt.Sprintf("after %d attempts: %s", j.attempts, j.lastErr), err)
		return
	}
	s.countSend(j.app.Name, resultRetry, err)
	d := backoff(j.attempts, s.cfg.Retry.Base, s.cfg.Retry.Max, s.rnd)
	if slow && d < badSecretPause {
		d = badSecretPause
	}
	at := s.clock.Now().Add(d)
	s.log.Info("send failed; will retry", zap.String("id", j.out.ID), zap.Int("attempt", j.attempts), zap.Duration("backoff", d), zap.Error(err))
	s.putStatus(ctx, j, schemas.StatusQueued, "retrying: "+j.lastErr, nil)
	s.putBack(t, at)
}

func (s *Sender) sent(ctx context.Context, t *task, res sendResult) {
	j := t.job
	s.pauses.ok(j.app.Name)
	st := s.newStatus(j, schemas.StatusSent, "")
	st.WeComMsgID = res.MsgID
	st.InvalidUsers = res.InvalidUser
	if res.InvalidParty != "" || res.InvalidTag != "" {
		st.Reason = strings.TrimSpace("invalid party: " + res.InvalidParty + " invalid tag: " + res.InvalidTag)
	}
	s.cardSent(ctx, j, &st, res) // cards.go
	s.record(j, st)
	s.afterSend(ctx, j, st) // recall.go
	if err := s.ackSent(ctx, j); err != nil {
		s.log.Warn("ack after send failed", zap.String("id", j.out.ID), zap.Error(err))
	}
	s.countSend(j.app.Name, resultSent, nil)
	s.observeE2E(j)
	s.finish(t)
}

// fail dead-letters the message, records the reason and acks it. cause is the
// error behind reason (for the errcode label).
func (s *Sender) fail(ctx context.Context, t *task, reason string, cause error) {
	s.deadLetter(ctx, t.job, reason, cause)
	s.finish(t)
}

func (s *Sender) deadLetter(ctx context.Context, j *job, reason string, cause error) {
	if err := s.bus.DeadLetter(ctx, DLQStage, j.msg, reason, j.attempts); err != nil {
		// Not in the DLQ: leave it un-acked so JetStream redelivers it.
		s.log.Error("dead letter failed; message left for redelivery", zap.Error(err))
		_ = s.park(ctx, j, s.cfg.Retry.Max)
		return
	}
	if j.out.ID != "" {
		s.putStatus(ctx, j, schemas.StatusFailed, reason, nil)
	}
	app := j.app.Name // empty for an unknown app: its name is not a label value
	if app == "" {
		app = "unknown"
	}
	s.countSend(app, resultFailed, cause)
	s.log.Warn("message dead-lettered", zap.String("id", j.out.ID), zap.String("app", j.out.Data.App), zap.Int("attempts", j.attempts), zap.String("reason", reason))
	if err := j.msg.Term(); err != nil {
		s.log.Warn("term after dead letter failed", zap.Error(err))
	}
}

func (s *Sender) newStatus(j *job, status, reason string) schemas.MessageStatus {
	return schemas.MessageStatus{ID: j.out.ID, App: j.out.Data.App, Client: schemas.APIClient(j.out.Source), Status: status, Reason: reason, Attempts: j.attempts, UpdatedAt: s.clock.Now()}
}

func (s *Sender) putStatus(_ context.Context, j *job, status, reason string, until *time.Time) {
	st := s.newStatus(j, status, reason)
	st.DeferredUntil = until
	s.record(j, st)
}

// record queues st for writing if keepsStatus says j's status is kept.
func (s *Sender) record(j *job, st schemas.MessageStatus) {
	if keepsStatus(j.out, j.msg.Headers().Get(bus.HeaderReplayOf) != "", st.Status) {
		s.stq.put(st)
	}
}

// ackSent acks a message WeCom accepted. A message/send that carried
// enable_duplicate_check is dropped by WeCom if a lost ack makes it come back:
// a plain ack (no round trip) is enough there. Every other send (unflagged
// messages, appchat, card updates, chat creation, Official Accounts) has its
// ack confirmed by the server.
func (s *Sender) ackSent(ctx context.Context, j *job) error {
	if !j.app.mp() && j.out.Data.Kind == schemas.KindMessage && j.flagged {
		return j.msg.Ack()
	}
	return j.msg.DoubleAck(ctx)
}

// heartbeat keeps every held message's AckWait from running out (wall clock:
// this is NATS time, not business time).
func (s *Sender) heartbeat(ctx context.Context) {
	tick := time.NewTicker(s.cfg.AckWait / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(s.held))
		for j := range s.held {
			msgs = append(msgs, j.msg)
		}
		s.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress() // an error means it was acked or the connection is down: redelivery covers it
		}
	}
}

// handBack returns the held, not-in-flight messages to JetStream at shutdown so
// another replica takes them at once instead of after AckWait.
func (s *Sender) handBack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// In stream order, so that the next holder receives them in that order.
	jobs := make([]*job, 0, len(s.held))
	for j := range s.held {
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b *job) int { return cmp.Compare(seqOf(a.msg), seqOf(b.msg)) })
	for _, j := range jobs {
		_ = j.msg.Nak()
		delete(s.held, j)
		s.m.backlog.WithLabelValues(classNames[j.cls]).Dec()
	}
}

func seqOf(m jetstream.Msg) uint64 {
	if md, err := m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

// followWatch applies a KV watch's initial values before it returns, then
// its updates in the background until ctx ends (then it stops the watch).
func followWatch(ctx context.Context, w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry)) {
	for e := range w.Updates() { // initial values, then a nil marker
		if e == nil {
			break
		}
		apply(e)
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(e)
				}
			}
		}
	}()
}
