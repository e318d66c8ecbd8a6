// Package pin is the step-up PIN: a second factor on top of the WeCom
// identity for sensitive data (payroll first). An employee sets the PIN on a
// hub page reached from the WeCom app (identity from WeCom OAuth2); it is
// stored as an argon2id hash in the wxhub_pin bucket (schemas.PINRecord), never
// logged and never typed into the chat. A verification is remembered in the
// record, so a connector (connectors.PINVerifiedWithin) or an OIDC client
// (acr urn:wxhub:acr:pin) can require "verified within N minutes". After
// MaxTries wrong PINs in a row the PIN is locked for LockFor and the employee
// is told by message. An admin resets it (Store.Reset, the admin endpoint).
package pin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/crypto/argon2"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// Errors of Set and Verify.
var (
	ErrNoPIN    = errors.New("pin: no PIN set")
	ErrWrongPIN = errors.New("pin: wrong PIN")
	ErrLocked   = errors.New("pin: locked after too many wrong PINs")
	ErrWeakPIN  = errors.New("pin: PIN does not meet the rules")
	ErrConfig   = errors.New("pin: invalid config")
)

// Config is the pin: section.
//
//	pin:
//	  app: helpdesk        # WeCom app of the PIN pages' OAuth and of the lockout message
//	  min_length: 6
//	  max_tries: 5
//	  lock_for: 15m
//	  admin_keys: [ops]    # api.keys names that may reset a PIN
type Config struct {
	// App is the WeCom app whose OAuth identifies the employee on the PIN pages
	// and through which the lockout message goes. Required for the pages.
	App string `yaml:"app"`
	// MinLength and MaxLength bound the PIN (digits only). Defaults 6 and 12.
	MinLength int `yaml:"min_length"`
	MaxLength int `yaml:"max_length"`
	// MaxTries wrong PINs in a row lock it. Default 5.
	MaxTries int `yaml:"max_tries"`
	// LockFor is how long a lock lasts. Default 15m.
	LockFor time.Duration `yaml:"lock_for"`
	// Argon2 parameters for new hashes; defaults RFC 9106's second choice:
	// time 3, memory 64 MiB, 4 lanes, 32-byte key.
	ArgonTime    uint32 `yaml:"argon_time"`
	ArgonMemory  uint32 `yaml:"argon_memory_kib"`
	ArgonThreads uint8  `yaml:"argon_threads"`
	// AdminKeys are the api.keys names that may call the reset endpoint.
	AdminKeys []string `yaml:"admin_keys"`
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.MinLength == 0 {
		c.MinLength = 6
	}
	if c.MaxLength == 0 {
		c.MaxLength = 12
	}
	if c.MaxTries == 0 {
		c.MaxTries = 5
	}
	if c.LockFor == 0 {
		c.LockFor = 15 * time.Minute
	}
	if c.ArgonTime == 0 {
		c.ArgonTime = 3
	}
	if c.ArgonMemory == 0 {
		c.ArgonMemory = 64 * 1024
	}
	if c.ArgonThreads == 0 {
		c.ArgonThreads = 4
	}
	return c
}

// Validate names the first bad key, relative to pin:.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.MinLength < 4 || c.MaxLength > 64 || c.MinLength > c.MaxLength:
		return fmt.Errorf("%w: pin.min_length: want 4 <= min_length <= max_length <= 64, got %d and %d", ErrConfig, c.MinLength, c.MaxLength)
	case c.MaxTries < 1:
		return fmt.Errorf("%w: pin.max_tries: must be at least 1", ErrConfig)
	case c.LockFor < time.Second:
		return fmt.Errorf("%w: pin.lock_for: must be at least 1s", ErrConfig)
	case c.ArgonMemory < 8*uint32(c.ArgonThreads):
		return fmt.Errorf("%w: pin.argon_memory_kib: must be at least 8 x argon_threads", ErrConfig)
	}
	return nil
}

// Notifier tells an employee something by message (the lockout).
type Notifier func(ctx context.Context, user, text string) error

// Store reads and writes PIN records. Safe for concurrent use by several
// processes: every write is a compare-and-set on the record's revision.
type Store struct {
	kv     jetstream.KeyValue
	cfg    Config
	now    func() time.Time
	log    *zap.Logger
	notify Notifier
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock (tests). Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLogger sets the logger. Default none.
func WithLogger(l *zap.Logger) Option { return func(s *Store) { s.log = l } }

// WithNotifier sets who tells the employee about a lock (BusNotifier). Default none.
func WithNotifier(n Notifier) Option { return func(s *Store) { s.notify = n } }

// NewStore returns a Store on the wxhub_pin bucket.
func NewStore(kv jetstream.KeyValue, cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{kv: kv, cfg: cfg.WithDefaults(), now: time.Now, log: zap.NewNop()}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.Named("pin")
	return s, nil
}

// Config returns the effective config.
func (s *Store) Config() Config { return s.cfg }

const casRetries = 5

// Get returns the user's record; a user without one gets an empty record and revision 0.
func (s *Store) Get(ctx context.Context, user string) (schemas.PINRecord, uint64, error) {
	return Read(ctx, s.kv, user)
}

// Read returns the user's record from the wxhub_pin bucket (revision 0: none).
func Read(ctx context.Context, kv jetstream.KeyValue, user string) (schemas.PINRecord, uint64, error) {
	rec := schemas.PINRecord{User: user}
	e, err := kv.Get(ctx, bus.PINKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, fmt.Errorf("pin: read: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("pin: unreadable record of %s: %w", user, err)
	}
	return rec, e.Revision(), nil
}

func (s *Store) put(ctx context.Context, rec schemas.PINRecord, rev uint64) (bool, error) {
	data, _ := json.Marshal(rec)
	var err error
	if rev == 0 {
		_, err = s.kv.Create(ctx, bus.PINKey(rec.User), data)
	} else {
		_, err = s.kv.Update(ctx, bus.PINKey(rec.User), data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil // a concurrent writer: read again
	}
	if err != nil {
		return false, fmt.Errorf("pin: write: %w", err)
	}
	// The status readers see follows the record; a lost status write only
	// delays "verified" until the next verification.
	st, _ := json.Marshal(schemas.PINStatus{User: rec.User, Set: rec.HasPIN(), VerifiedAt: rec.VerifiedAt, LockedUntil: rec.LockedUntil})
	if _, err := s.kv.Put(ctx, bus.PINStatusKey(rec.User), st); err != nil {
		return true, fmt.Errorf("pin: write status: %w", err)
	}
	return true, nil
}

// CheckRules reports whether pin is acceptable: digits only, within the lengths.
func (s *Store) CheckRules(pin string) error {
	n := utf8.RuneCountInString(pin)
	if n < s.cfg.MinLength || n > s.cfg.MaxLength {
		return fmt.Errorf("%w: %d to %d digits", ErrWeakPIN, s.cfg.MinLength, s.cfg.MaxLength)
	}
	same, up, down := true, true, true
	for i := range len(pin) {
		if pin[i] < '0' || pin[i] > '9' {
			return fmt.Errorf("%w: digits only", ErrWeakPIN)
		}
		if i > 0 {
			same = same && pin[i] == pin[i-1]
			up = up && pin[i] == pin[i-1]+1
			down = down && pin[i] == pin[i-1]-1
		}
	}
	if same || up || down {
		return fmt.Errorf("%w: not all the same digit nor a run like 123456", ErrWeakPIN)
	}
	return nil
}

func (s *Store) hash(pin string, salt []byte, p schemas.PINParams) []byte {
	return argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// Set stores a new PIN for user (replacing any, clearing failures and lock).
// The caller has established the user's identity (WeCom OAuth) and, when a
// PIN is already set, the current PIN.
func (s *Store) Set(ctx context.Context, user, pin string) error {
	if err := s.CheckRules(pin); err != nil {
		return err
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	p := schemas.PINParams{Time: s.cfg.ArgonTime, Memory: s.cfg.ArgonMemory, Threads: s.cfg.ArgonThreads, KeyLen: 32}
	h := s.hash(pin, salt, p)
	for range casRetries {
		_, rev, err := s.Get(ctx, user)
		if err != nil {
			return err
		}
		rec := schemas.PINRecord{User: user, Hash: h, Salt: salt, Params: p, SetAt: s.now().UTC()}
		ok, err := s.put(ctx, rec, rev)
		if err != nil {
			return err
		}
		if ok {
			s.log.Info("PIN set", zap.String("user", user))
			return nil
		}
	}
	return fmt.Errorf("pin: %s: too many concurrent updates", user)
}

// Verify checks pin for user. nil: right, and VerifiedAt is now. ErrWrongPIN
// (wrapped, with the tries left), ErrLocked (now, or by this try), ErrNoPIN.
func (s *Store) Verify(ctx context.Context, user, pin string) error {
	for range casRetries {
		rec, rev, err := s.Get(ctx, user)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		switch {
		case !rec.HasPIN():
			return ErrNoPIN
		case now.Before(rec.LockedUntil):
			return fmt.Errorf("%w until %s", ErrLocked, rec.LockedUntil.Format(time.RFC3339))
		}
		right := subtle.ConstantTimeCompare(s.hash(pin, rec.Salt, rec.Params), rec.Hash) == 1
		locked := false
		if right {
			rec.Failures, rec.LockedUntil, rec.VerifiedAt = 0, time.Time{}, now
		} else {
			rec.Failures++
			if rec.Failures >= s.cfg.MaxTries {
				rec.Failures, rec.LockedUntil, locked = 0, now.Add(s.cfg.LockFor), true
			}
		}
		ok, err := s.put(ctx, rec, rev)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		switch {
		case right:
			s.log.Info("PIN verified", zap.String("user", user))
			return nil
		case locked:
			s.log.Warn("PIN locked after too many wrong tries", zap.String("user", user), zap.Time("until", rec.LockedUntil))
			s.tell(ctx, user, fmt.Sprintf("您的安全密码连续输错 %d 次，已锁定至 %s。如非本人操作，请立即联系管理员。",
				s.cfg.MaxTries, rec.LockedUntil.In(chinaTime).Format("15:04")))
			return fmt.Errorf("%w until %s", ErrLocked, rec.LockedUntil.Format(time.RFC3339))
		default:
			s.log.Info("wrong PIN", zap.String("user", user), zap.Int("failures", rec.Failures))
			return fmt.Errorf("%w: %d tries left", ErrWrongPIN, s.cfg.MaxTries-rec.Failures)
		}
	}
	return fmt.Errorf("pin: %s: too many concurrent updates", user)
}

var chinaTime = time.FixedZone("CST", 8*3600)

func (s *Store) tell(ctx context.Context, user, text string) {
	if s.notify == nil {
		return
	}
	if err := s.notify(ctx, user, text); err != nil {
		s.log.Warn("lockout message not queued", zap.String("user", user), zap.Error(err))
	}
}

// Reset removes the user's PIN (an admin's reset, or a re-verified identity):
// the employee sets a new one on the PIN page.
func (s *Store) Reset(ctx context.Context, user string) error {
	for _, k := range []string{bus.PINStatusKey(user), bus.PINKey(user)} {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("pin: reset: %w", err)
		}
	}
	s.log.Info("PIN reset", zap.String("user", user))
	s.tell(ctx, user, "您的安全密码已被重置，请在应用中重新设置。")
	return nil
}

// VerifiedWithin reports whether user verified the PIN in the last d.
func (s *Store) VerifiedWithin(ctx context.Context, user string, d time.Duration) (bool, error) {
	rec, _, err := s.Get(ctx, user)
	if err != nil {
		return false, err
	}
	return rec.VerifiedWithin(s.now(), d), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// BusNotifier queues an urgent text to the user through WXHUB_OUT, as a
// connector's reply would go (the sender applies limits; urgent passes quiet hours).
func BusNotifier(b *bus.Bus, app string) Notifier {
	return func(ctx context.Context, user, text string) error {
		body, _ := json.Marshal(map[string]any{"touser": user, "msgtype": "text", "text": map[string]string{"content": text}})
		id := "pin-" + randomHex(12)
		out := schemas.Outbound{
			SpecVersion: schemas.SpecVersion, ID: id, Source: "identity/pin", Type: "wxhub.out." + schemas.KindMessage,
			Time: time.Now().UTC(), DataContentType: "application/json",
			Data: schemas.OutboundData{App: app, Kind: schemas.KindMessage, Priority: schemas.PriorityUrgent, Body: body},
		}
		_, err := b.PublishJSON(ctx, bus.OutSubject(app), id, schemas.SchemaOutbound, out)
		return err
	}
}
