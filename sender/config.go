package sender

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wxhub/wxhub/dnd"
)

// ErrConfig wraps every configuration error; the message names the key.
var ErrConfig = errors.New("sender: invalid config")

// App kinds: what an App sends through.
const (
	AppKindWeCom = "wecom" // a WeCom self-built app: message/send and friends (the default)
	AppKindMP    = "mp"    // a WeChat Official Account: customer-service and template messages
)

// App is one WeCom self-built app, or one Official Account (Kind "mp"), the
// sender may send as. The lead fills these from the main config's wecom.apps
// and mp.accounts; names are unique across both (OutboundData.App).
type App struct {
	Name    string `yaml:"name"`     // the app's name in the config (OutboundData.App)
	Kind    string `yaml:"kind"`     // AppKindWeCom (default) or AppKindMP
	AgentID int64  `yaml:"agent_id"` // WeCom: added to every body as agentid
	AppID   string `yaml:"app_id"`   // Official Account: appid for /cgi-bin/token
	Secret  string `yaml:"secret"`   // corpsecret (WeCom) or AppSecret (Official Account); never logged
	// CorpID is a WeCom app's corp (wecom.corps[]). Empty: Config.CorpID.
	CorpID string `yaml:"corp_id"`
}

func (a App) mp() bool { return a.Kind == AppKindMP }

// Limits are WeCom's send limits. Zero takes the default (WeCom's documented
// value); a negative value switches the limit off.
type Limits struct {
	// PerMemberMinute: messages one app sends one member in any 60 s window.
	// WeCom silently drops the excess. Default 30.
	PerMemberMinute int `yaml:"per_member_minute"`
	// PerMemberHour: the same over any 3600 s window. Default 1000.
	PerMemberHour int `yaml:"per_member_hour"`
	// ChatPerMinute: appchat messages a group chat receives from the app in any
	// 60 s window (WeCom: 200 a member a minute; every member gets every message). Default 200.
	ChatPerMinute int `yaml:"chat_per_minute"`
	// AppDailyRecipients: recipients (人次) one app may send to per calendar day in
	// TimeZone. WeCom allows 200 × the corp's seat limit, which only the corp knows:
	// 0 (default) does not enforce it; set it to seats × 200.
	AppDailyRecipients int `yaml:"app_daily_recipients"`
	// CorpAPIMinute: calls of one API (message/send, appchat/send,
	// update_template_card) by the whole corp in any 60 s window. Default 10000.
	CorpAPIMinute int `yaml:"corp_api_minute"`
	// CorpAPIHour: the same over any 3600 s window. Default 150000.
	CorpAPIHour int `yaml:"corp_api_hour"`
	// Margin is added to every window: a slot is held Margin longer than the
	// window, to cover the call's latency and WeCom's own clock reading. Default 1s.
	Margin time.Duration `yaml:"margin"`
	// UrgentReserve is the share of each member's per-minute and per-hour
	// window that bulk messages may not use: kept for urgent and normal ones,
	// so a bulk campaign never makes an urgent message wait for the window.
	// Default 0.2 (bulk gets 24 of 30 a minute); 0 < x < 1, or -1 for none.
	UrgentReserve float64 `yaml:"urgent_reserve"`
}

// Retry says how often and how patiently a failing send is retried.
type Retry struct {
	// MaxAttempts: send attempts before the message goes to WXHUB_DLQ. Default 8.
	MaxAttempts int `yaml:"max_attempts"`
	// Base backoff after the first failure; doubled each time, with full jitter. Default 1s.
	Base time.Duration `yaml:"base"`
	// Max backoff. Default 5m.
	Max time.Duration `yaml:"max"`
	// MaxPause bounds how long one app's sends stop after WeCom answers 45009
	// (a frequency limit): Base after the first event, doubled per distinct
	// event (a burst of concurrent answers is one), reset by a success.
	// Default 1m.
	MaxPause time.Duration `yaml:"max_pause"`
}

// Config is the sender's section of the main config (`sender:`). Every zero value
// takes its default; Validate reports the first bad key.
type Config struct {
	// CorpID for gettoken. Required when a WeCom app is configured.
	CorpID string `yaml:"-"` // from wecom.corp_id
	// CorpLimits override Limits.CorpAPIMinute/CorpAPIHour for one corp (by
	// corp id; zero fields keep Limits). Every corp has its own corp-wide ledgers.
	CorpLimits map[string]CorpLimits `yaml:"-"` // from wecom.corps[]
	// Apps the sender may send as: WeCom apps and Official Accounts. At least one.
	Apps []App `yaml:"-"` // from wecom.apps and mp.accounts
	// MPAPIBase is the Official Account API's base URL. Default
	// https://api.weixin.qq.com (wecom.DefaultMPBaseURL); the simulator's in tests.
	MPAPIBase string `yaml:"-"` // from mp.api_base
	// Limits, defaulting to WeCom's documented values.
	Limits Limits `yaml:"limits"`
	// Retry of failed sends.
	Retry Retry `yaml:"retry"`
	// QuietHours is the company default do-not-disturb window, e.g. "22:00-08:00";
	// empty (default) means none. Members override it by chat command.
	QuietHours string `yaml:"quiet_hours"`
	// TimeZone of quiet hours and of the daily quota. Default Asia/Shanghai.
	TimeZone string `yaml:"time_zone"`
	// DuplicateCheckInterval is sent as duplicate_check_interval with
	// enable_duplicate_check=1 on the messages whose content is new to their
	// recipients: WeCom then drops a retry of one after a lost answer. A
	// message repeating a content sent within it goes unflagged and is
	// delivered (docs/outbound.md). Default 30m; WeCom's maximum is 4h.
	DuplicateCheckInterval time.Duration `yaml:"duplicate_check_interval"`
	// DuplicateRecordMax bounds the contents remembered for that decision
	// (about 150 bytes each); past it the oldest is forgotten and nothing is
	// flagged for one interval. Default 200000.
	DuplicateRecordMax int `yaml:"duplicate_record_max"`
	// Workers: API calls in flight at once. Default 16.
	Workers int `yaml:"workers"`
	// MaxPending: messages held un-acked (the in-memory backlog the scheduler
	// chooses from; MaxAckPending of the consumer). An urgent message is seen as
	// soon as the backlog ahead of it fits here. Default 20000.
	MaxPending int `yaml:"max_pending"`
	// FetchBatch: messages fetched per pull. Default 500.
	FetchBatch int `yaml:"fetch_batch"`
	// AckWait of the consumer; held messages are kept alive with InProgress at a
	// third of it. It bounds recovery: the messages a killed sender held are
	// redelivered within it, and a standby takes over (PinnedTTL) within it.
	// Default 6s.
	AckWait time.Duration `yaml:"ack_wait"`
	// HoldMax: a message deferred (quiet hours, backoff) for longer than this is
	// handed back to JetStream with NakWithDelay instead of being held in memory,
	// so a night of deferred bulk does not fill MaxPending. Default 10m.
	HoldMax time.Duration `yaml:"hold_max"`
	// Consumer is the durable consumer's name on WXHUB_OUT. Default "sender".
	Consumer string `yaml:"consumer"`
}

// Defaults.
const (
	DefaultPerMemberMinute        = 30
	DefaultPerMemberHour          = 1000
	DefaultChatPerMinute          = 200
	DefaultCorpAPIMinute          = 10000
	DefaultCorpAPIHour            = 150000
	DefaultMargin                 = time.Second
	DefaultMaxAttempts            = 8
	DefaultRetryBase              = time.Second
	DefaultRetryMax               = 5 * time.Minute
	DefaultTimeZone               = "Asia/Shanghai"
	DefaultDuplicateCheckInterval = 30 * time.Minute
	DefaultUrgentReserve          = 0.2
	DefaultWorkers                = 16
	DefaultMaxPending             = 20000
	DefaultFetchBatch             = 500
	DefaultAckWait                = 6 * time.Second
	DefaultHoldMax                = 10 * time.Minute
	DefaultConsumer               = "sender"
	maxDuplicateCheckInterval     = 4 * time.Hour
)

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	l := &c.Limits
	def(&l.PerMemberMinute, DefaultPerMemberMinute)
	def(&l.PerMemberHour, DefaultPerMemberHour)
	def(&l.ChatPerMinute, DefaultChatPerMinute)
	def(&l.CorpAPIMinute, DefaultCorpAPIMinute)
	def(&l.CorpAPIHour, DefaultCorpAPIHour)
	defD(&l.Margin, DefaultMargin)
	if l.UrgentReserve == 0 {
		l.UrgentReserve = DefaultUrgentReserve
	}
	def(&c.Retry.MaxAttempts, DefaultMaxAttempts)
	defD(&c.Retry.Base, DefaultRetryBase)
	defD(&c.Retry.Max, DefaultRetryMax)
	defD(&c.Retry.MaxPause, DefaultMaxPause)
	if c.TimeZone == "" {
		c.TimeZone = DefaultTimeZone
	}
	defD(&c.DuplicateCheckInterval, DefaultDuplicateCheckInterval)
	if c.DuplicateRecordMax == 0 {
		c.DuplicateRecordMax = 200000
	}
	def(&c.Workers, DefaultWorkers)
	def(&c.MaxPending, DefaultMaxPending)
	def(&c.FetchBatch, DefaultFetchBatch)
	defD(&c.AckWait, DefaultAckWait)
	defD(&c.HoldMax, DefaultHoldMax)
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	c.Apps = append([]App(nil), c.Apps...)
	return c
}

// Validate checks c after defaults. Errors wrap ErrConfig and name the key as
// "sender.<key>".
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%w: sender.%s: %s", ErrConfig, key, fmt.Sprintf(format, a...))
	}
	if len(c.Apps) == 0 {
		return bad("apps", "no app to send as")
	}
	names := map[string]bool{}
	for i, a := range c.Apps {
		k := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Name == "":
			return bad(k+".name", "empty")
		case names[a.Name]:
			return bad(k+".name", "%q used twice", a.Name)
		case a.Kind != "" && a.Kind != AppKindWeCom && a.Kind != AppKindMP:
			return bad(k+".kind", "%q, want %s or %s", a.Kind, AppKindWeCom, AppKindMP)
		case a.mp() && a.AppID == "":
			return bad(k+".app_id", "empty")
		case !a.mp() && a.AgentID <= 0:
			return bad(k+".agent_id", "must be a positive number, got %d", a.AgentID)
		case !a.mp() && c.CorpID == "" && a.CorpID == "":
			return bad("corp_id", "empty")
		case a.Secret == "":
			return bad(k+".secret", "empty")
		}
		names[a.Name] = true
	}
	if c.MPAPIBase != "" && !strings.HasPrefix(c.MPAPIBase, "http://") && !strings.HasPrefix(c.MPAPIBase, "https://") {
		return bad("mp_api_base", "must be an http(s) URL, got %q", c.MPAPIBase)
	}
	if c.Limits.Margin < 0 {
		return bad("limits.margin", "negative")
	}
	if r := c.Limits.UrgentReserve; r != -1 && (r < 0 || r >= 1) {
		return bad("limits.urgent_reserve", "must be a share between 0 and 1 (or -1 for none), got %g", r)
	}
	r := c.Retry
	switch {
	case r.MaxAttempts < 1:
		return bad("retry.max_attempts", "must be at least 1, got %d", r.MaxAttempts)
	case r.Base < 0:
		return bad("retry.base", "negative")
	case r.Max < r.Base:
		return bad("retry.max", "%s is below retry.base %s", r.Max, r.Base)
	case r.MaxPause < r.Base:
		return bad("retry.max_pause", "%s is below retry.base %s", r.MaxPause, r.Base)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return bad("time_zone", "%v", err)
	}
	if c.QuietHours != "" {
		if _, err := dnd.ParseWindow(c.QuietHours); err != nil {
			return bad("quiet_hours", "%v", err)
		}
	}
	switch {
	case c.DuplicateCheckInterval < time.Second || c.DuplicateCheckInterval > maxDuplicateCheckInterval:
		return bad("duplicate_check_interval", "%s, want 1s..4h (WeCom's range)", c.DuplicateCheckInterval)
	case c.Workers < 1:
		return bad("workers", "must be at least 1, got %d", c.Workers)
	case c.MaxPending < 1:
		return bad("max_pending", "must be at least 1, got %d", c.MaxPending)
	case c.FetchBatch < 1:
		return bad("fetch_batch", "must be at least 1, got %d", c.FetchBatch)
	case c.AckWait < time.Second:
		return bad("ack_wait", "%s, want at least 1s", c.AckWait)
	case c.HoldMax < 0:
		return bad("hold_max", "negative")
	}
	return nil
}

func (c Config) app(name string) (App, bool) {
	for _, a := range c.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return App{}, false
}
