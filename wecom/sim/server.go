package sim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/wecom"
)

// Clock tells the simulator the time; tests inject one to expire tokens and
// slide rate-limit windows without sleeping.
type Clock interface{ Now() time.Time }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now returns f().
func (f ClockFunc) Now() time.Time { return f() }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Option customizes a Server.
type Option func(*Server)

// WithClock sets the clock (default: the system clock).
func WithClock(c Clock) Option { return func(s *Server) { s.clock = c } }

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(s *Server) { s.log = l } }

// WithHTTPClient sets the HTTP client used to post callbacks (default: a plain
// client; per-attempt timeouts come from Config.Callback).
func WithHTTPClient(c *http.Client) Option { return func(s *Server) { s.httpClient = c } }

// SentMessage is one message delivered to one recipient. A message/send to three
// members gives three SentMessages with the same MsgID.
type SentMessage struct {
	Seq          int64           `json:"seq"`                     // increasing across the run, for ?since=
	MsgID        string          `json:"msgid"`                   // the msgid the API answered (internal for appchat)
	API          string          `json:"api"`                     // message/send, appchat/send, message/update_template_card
	App          string          `json:"app"`                     // the app's name
	AgentID      int64           `json:"agent_id"`                //
	User         string          `json:"user"`                    // the recipient's userid
	ChatID       string          `json:"chat_id,omitempty"`       // appchat/send
	MsgType      string          `json:"msgtype"`                 // text, markdown, template_card, ...
	Content      string          `json:"content,omitempty"`       // text/markdown content, or a card's or article's title
	ResponseCode string          `json:"response_code,omitempty"` // template_card: the code the API answered
	Body         json.RawMessage `json:"body"`                    // the request body as received
	Time         time.Time       `json:"time"`
}

// Reasons a message was accepted but not delivered.
const (
	DropMemberMinute     = "member_minute_limit"      // > Limits.MemberPerMinute in 60 s
	DropMemberHour       = "member_hour_limit"        // > Limits.MemberPerHour in 3600 s
	DropChatMemberMinute = "chat_member_minute_limit" // > Limits.ChatMemberPerMinute in 60 s
	DropDuplicate        = "duplicate"                // enable_duplicate_check within the interval
)

// DroppedMessage is a message WeCom accepted (errcode 0) but did not deliver to User.
type DroppedMessage struct {
	SentMessage
	Reason string `json:"reason"`
}

// Stats are the simulator's counters since start or the last Reset.
type Stats struct {
	Calls      map[string]int `json:"calls"`       // API calls by API name (gettoken, message/send, ...)
	Errors     map[string]int `json:"errors"`      // non-zero errcodes answered, by errcode
	GetToken   map[string]int `json:"gettoken"`    // successful gettoken calls by app
	Sent       int            `json:"sent"`        // SentMessages recorded
	Dropped    map[string]int `json:"dropped"`     // dropped deliveries by reason
	Duplicates int            `json:"duplicates"`  // message/send calls answered as duplicates
	Faults     int            `json:"faults"`      // answers produced by FailNext
	Callbacks  int            `json:"callbacks"`   // callback deliveries started
	Attempts   int            `json:"attempts"`    // callback HTTP attempts in all
	CallbackKO int            `json:"callback_ko"` // callback deliveries that got no 200 answer
}

type token struct {
	app     string
	value   string
	expires time.Time
}

type cardCode struct {
	app    string
	msgID  string
	users  []string
	issued time.Time
	used   bool
}

type chat struct {
	ChatID   string   `json:"chatid"`
	Name     string   `json:"name"`
	Owner    string   `json:"owner"`
	UserList []string `json:"userlist"`
	ChatType int      `json:"chat_type"`
	app      string
}

// Media is an uploaded temporary media file.
type Media struct {
	ID          string    `json:"media_id"`
	Type        string    `json:"type"`
	App         string    `json:"app"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Data        []byte    `json:"-"`
	CreatedAt   time.Time `json:"created_at"`
	// Uploaded: it came through media/upload (not AddMedia or a played voice).
	Uploaded bool `json:"uploaded,omitempty"`
}

type oauthCode struct {
	user    string
	expires time.Time
}

// dupEntry is a message remembered for the duplicate check: its id and when
// it was delivered.
type dupEntry struct {
	msgID string
	at    time.Time
}

type fault struct {
	api  string // "" = every API but gettoken
	left int
	code int
}

type dayCount struct {
	day string
	n   int
}

// Server is the simulated WeCom API and the WeChat side of callbacks. It is an
// http.Handler; all methods are safe for concurrent use.
type Server struct {
	cfg        Config
	clock      Clock
	log        *zap.Logger
	httpClient *http.Client
	mux        *http.ServeMux

	appsByName   map[string]*App
	appsByAgent  map[int64]*App
	appsBySecret map[string]*App
	accounts     map[string]*Account
	crypters     map[string]*wecom.Crypter // by app or account name
	// addressBook is replaced whole when a test or the control API changes a contact.
	addressBook atomic.Pointer[addressBook]
	bookMu      sync.Mutex // serialises contact changes

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever something is recorded
	tokens   map[string]*token
	byToken  map[string]*token
	sent     []SentMessage
	dropped  []DroppedMessage
	stats    Stats
	seq      int64
	msgSeq   int64
	member   map[string]*window // app|user
	chatMem  map[string]*window // user
	apiWin   map[string]*window // api name
	daily    map[string]*dayCount
	dups     map[string]dupEntry
	cards    map[string]*cardCode
	chats    map[string]*chat
	media    map[string]*Media
	meetings map[string]*Meeting
	recalled map[string]time.Time // msgid -> when message/recall took it back (recall.go)
	oauth    map[string]oauthCode
	faults   []fault
	lost     map[string]int // LoseAnswerNextOn: answers to drop, by API
	httpSrv  *http.Server
	listener net.Listener

	// Official Accounts (mp.go), under mu: tokens by value, followers by account|openid.
	mpTokens    map[string]*token
	mpFollowers map[string]*mpFollower
	mpMsgSeq    int64
	// mpClientMsgs: template sends by account|openid|client_msg_id, for
	// WeChat's de-duplication of a repeated client_msg_id.
	mpClientMsgs map[string]mpClientMsg
}

// New validates cfg (after WithDefaults) and returns a Server.
func New(cfg Config, opts ...Option) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		clock:        systemClock{},
		log:          zap.NewNop(),
		httpClient:   &http.Client{},
		appsByName:   map[string]*App{},
		appsByAgent:  map[int64]*App{},
		appsBySecret: map[string]*App{},
		accounts:     map[string]*Account{},
		crypters:     map[string]*wecom.Crypter{},
		changed:      make(chan struct{}),
		tokens:       map[string]*token{},
		byToken:      map[string]*token{},
		chats:        map[string]*chat{},
		media:        map[string]*Media{},
		oauth:        map[string]oauthCode{},
		cards:        map[string]*cardCode{},
	}
	for _, o := range opts {
		o(s)
	}
	for i := range s.cfg.Apps {
		a := &s.cfg.Apps[i]
		s.appsByName[a.Name] = a
		s.appsByAgent[a.AgentID] = a
		s.appsBySecret[a.Secret] = a
		if a.Token != "" && a.EncodingAESKey != "" {
			c, err := wecom.NewCrypter(a.Token, a.EncodingAESKey, s.corpOf(a))
			if err != nil {
				return nil, fmt.Errorf("%w: apps[%d]: %w", ErrConfig, i, err)
			}
			s.crypters[a.Name] = c
		}
	}
	for i := range s.cfg.Accounts {
		a := &s.cfg.Accounts[i]
		s.accounts[a.Name] = a
		c, err := wecom.NewCrypter(a.Token, a.EncodingAESKey, a.AppID)
		if err != nil {
			return nil, fmt.Errorf("%w: accounts[%d]: %w", ErrConfig, i, err)
		}
		s.crypters[a.Name] = c
	}
	s.addressBook.Store(newAddressBook(s.cfg.CorpID, s.cfg.Users, s.cfg.Departments, s.cfg.Tags))
	s.resetLocked()
	s.initMP()
	s.routes()
	return s, nil
}

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// ServeHTTP serves the WeCom API (/cgi-bin/...) and the simulator's own API (/sim/...).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves in the
// background until Close. URL gives the address to point clients at.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sim: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.httpSrv, s.listener = srv, ln
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("sim: serve", zap.Error(err))
		}
	}()
	s.log.Info("sim: WeCom simulator listening", zap.String("url", s.URL()))
	return nil
}

// URL is the base URL of a started server (e.g. http://127.0.0.1:34567), "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return "http://" + s.listener.Addr().String()
}

// Close stops a started server, waiting up to 5 s for requests in flight.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.httpSrv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// Serve runs a simulator for cfg on cfg.Listen until ctx ends. It is what
// `wxhub sim serve` runs.
func Serve(ctx context.Context, cfg Config, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	s, err := New(cfg, WithLogger(log))
	if err != nil {
		return err
	}
	if err := s.Start(s.cfg.Listen); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Reset forgets what was sent, dropped and counted, the rate-limit windows,
// duplicate checks, faults and OAuth codes. Tokens, chats and media survive, so
// a running gateway and sender keep working.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
	s.notifyLocked()
}

func (s *Server) resetLocked() {
	s.sent, s.dropped = nil, nil
	s.stats = Stats{Calls: map[string]int{}, Errors: map[string]int{}, GetToken: map[string]int{}, Dropped: map[string]int{}}
	s.member = map[string]*window{}
	s.chatMem = map[string]*window{}
	s.apiWin = map[string]*window{}
	s.daily = map[string]*dayCount{}
	s.dups = map[string]dupEntry{}
	s.faults = nil
	s.lost = nil
	s.oauth = map[string]oauthCode{}
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Sent returns every delivered message, oldest first.
func (s *Server) Sent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentMessage(nil), s.sent...)
}

// SentTo returns the messages delivered to user (case-insensitive), oldest first.
func (s *Server) SentTo(user string) []SentMessage {
	var out []SentMessage
	for _, m := range s.Sent() {
		if strings.EqualFold(m.User, user) {
			out = append(out, m)
		}
	}
	return out
}

// Dropped returns every accepted-but-not-delivered message, oldest first.
func (s *Server) Dropped() []DroppedMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DroppedMessage(nil), s.dropped...)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Calls, st.Errors, st.GetToken, st.Dropped = cloneMap(st.Calls), cloneMap(st.Errors), cloneMap(st.GetToken), cloneMap(st.Dropped)
	return st
}

// GetTokenCalls is the number of successful gettoken calls for app.
func (s *Server) GetTokenCalls(app string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.GetToken[app]
}

func cloneMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// WaitSent blocks until a delivered message satisfies pred (already recorded
// ones count) and returns it, or returns ctx's error.
func (s *Server) WaitSent(ctx context.Context, pred func(SentMessage) bool) (SentMessage, error) {
	for {
		// The predicate runs without the lock, so it may read the server itself.
		s.mu.Lock()
		sent, ch := s.sent, s.changed
		s.mu.Unlock()
		for _, m := range sent {
			if pred(m) {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return SentMessage{}, fmt.Errorf("sim: wait sent: %w", ctx.Err())
		case <-ch:
		}
	}
}

// ExpireTokens makes every access_token issued so far expired: calls with them
// answer 42001 and the next gettoken issues a new one.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for _, t := range s.tokens {
		t.expires = now
	}
	for _, t := range s.mpTokens { // replaced ones still in their grace period
		t.expires = now
	}
}

// FailNext makes the next n API calls (any API but gettoken and the Official
// Account's token) fail with errcode.
// An errcode from 500 to 599 is answered as that HTTP status instead, with no JSON.
func (s *Server) FailNext(n int, errcode int) { s.FailNextOn("", n, errcode) }

// FailNextOn is FailNext for one API, named as in Stats.Calls ("message/send",
// "gettoken", ...).
func (s *Server) FailNextOn(api string, n int, errcode int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{api: api, left: n, code: errcode})
}

// LoseAnswerNextOn makes the next n calls of an Official Account API (named as
// in Stats.Calls) take effect but lose their answer: the connection is closed
// before it, an ambiguous failure the caller cannot tell from a call never made.
func (s *Server) LoseAnswerNextOn(api string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost == nil {
		s.lost = make(map[string]int)
	}
	s.lost[api] += n
}

// takeLost reports whether api's answer is to be lost, counting it down.
func (s *Server) takeLost(api string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost[api] <= 0 {
		return false
	}
	s.lost[api]--
	return true
}

// IssueOAuthCode returns an OAuth code for userid that auth/getuserinfo accepts
// once within 5 minutes, as if the member had opened an OAuth link in WeCom.
func (s *Server) IssueOAuthCode(userid string) (string, error) {
	u, ok := s.book().users[lower(userid)]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownUser, userid)
	}
	code := randomString(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth[code] = oauthCode{user: u.UserID, expires: s.clock.Now().Add(5 * time.Minute)}
	return code, nil
}

// MediaByID returns an uploaded media file.
func (s *Server) MediaByID(id string) (Media, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[id]
	if !ok {
		return Media{}, false
	}
	return *m, true
}

// AddMedia stores a media file as if it had been uploaded by app, and returns its
// media_id: for messages a test sends that refer to media, or for inbound image
// and voice messages.
func (s *Server) AddMedia(app, mediaType, filename string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Media{ID: "3" + randomString(40), Type: mediaType, App: app, Filename: filename,
		ContentType: contentType(data), Data: append([]byte(nil), data...), CreatedAt: s.clock.Now()}
	s.media[m.ID] = m
	return m.ID
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomString(n int) string {
	// One read from crypto/rand for the lot (it was a big.Int draw per
	// character, ~10% of the simulator's CPU under load); bytes >= 248 are
	// redrawn so each of the 62 characters stays equally likely (248 = 4 × 62).
	const unbiased = 256 - 256%len(base62)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/8+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		for _, c := range buf {
			if int(c) < unbiased && len(out) < n {
				out = append(out, base62[int(c)%len(base62)])
			}
		}
	}
	return string(out)
}

// window is a sliding-window counter: the times of past events, oldest first.
type window struct{ ts []time.Time }

// count is the number of events in (now-span, now].
func (w *window) count(now time.Time, span time.Duration) int {
	from := now.Add(-span)
	i := sort.Search(len(w.ts), func(i int) bool { return w.ts[i].After(from) })
	return len(w.ts) - i
}

// add records an event and forgets those older than keep.
func (w *window) add(now time.Time, keep time.Duration) {
	from := now.Add(-keep)
	i := sort.Search(len(w.ts), func(i int) bool { return w.ts[i].After(from) })
	if i > 0 {
		w.ts = append(w.ts[:0], w.ts[i:]...)
	}
	w.ts = append(w.ts, now)
}

func win(m map[string]*window, k string) *window {
	w := m[k]
	if w == nil {
		w = &window{}
		m[k] = w
	}
	return w
}

// over reports whether one more event would exceed limit in span (limit < 0: never).
func (w *window) over(now time.Time, span time.Duration, limit int) bool {
	return limit >= 0 && w.count(now, span) >= limit
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
