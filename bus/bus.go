// Package bus is wxhub's only contact with NATS: it runs the embedded server (or
// connects to a cluster), declares the streams and KV buckets, and holds the
// subject, header and tracing conventions every component shares.
package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ErrConfig wraps every configuration error; the message names the field.
var ErrConfig = errors.New("bus: invalid config")

// ErrNotReady reports a bus that is disconnected or lacks a stream.
var ErrNotReady = errors.New("bus: not ready")

// Config says where NATS is and how the streams are declared. The zero value
// (plus DataDir) runs an embedded server on 127.0.0.1:4222.
type Config struct {
	// URL of an existing NATS cluster, comma-separated ("nats://a:4222,nats://b:4222").
	// Empty: run an embedded server with JetStream file storage in DataDir.
	URL string `yaml:"url"`
	// DataDir is the embedded server's JetStream store. Default ./data/nats.
	DataDir string `yaml:"data_dir"`
	// Host the embedded server listens on. Default 127.0.0.1: connectors in other
	// languages and extra processes on this machine connect to it.
	Host string `yaml:"host"`
	// Port of the embedded server. 0 means 4222; -1 picks a free port (tests).
	Port int `yaml:"port"`
	// Replicas of every stream and bucket. Default 1; 3 on a cluster. The
	// embedded server is a single node, so it always uses 1.
	Replicas int `yaml:"replicas"`
	// Partitions of WXHUB_ROUTE per connector (hash of the user). Default 16.
	// Changing it while events are in flight may reorder one user's events once.
	Partitions int `yaml:"partitions"`
	// Name of the client connection as the server shows it. Default "wxhub".
	Name string `yaml:"name"`
	// CredsFile is a NATS .creds file (JWT + nkey) for the cluster.
	CredsFile string `yaml:"creds_file"`
	// User and Password for the cluster, if it uses user/password auth.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// DuplicateWindow is how long WXHUB_IN and WXHUB_DLQ remember a
	// Nats-Msg-Id. Default 5m: WeChat retries within 15 s, and a replayed
	// callback is refused by the gateway once its timestamp is older than
	// gateway.timestamp_window (2m); one stamped 2m ahead passes for 4m, so
	// config checks this is at least 2 x that window + gateway.clock_skew. Every
	// id costs the server ~130 bytes of memory for the window, and the server
	// frees its list of ids only when it holds three times the live ones, so
	// memory rises for about three windows before it levels off: a longer
	// window is memory held at the message rate, and a later plateau.
	// WXHUB_ROUTE and WXHUB_OUT use at most hopDuplicateWindow (2m).
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// MaxAge of messages in WXHUB_IN, WXHUB_ROUTE and WXHUB_OUT. Default 7 days.
	MaxAge time.Duration `yaml:"max_age"`
	// DLQMaxAge: how long dead letters are kept for inspection. Default 30 days.
	DLQMaxAge time.Duration `yaml:"dlq_max_age"`
	// StatusTTL of outbound message status entries. Default 7 days.
	StatusTTL time.Duration `yaml:"status_ttl"`
	// AuthTTL of scan-to-login challenges. Default 10 minutes.
	AuthTTL time.Duration `yaml:"auth_ttl"`
	// ConnectTimeout bounds Open's first connection and the embedded server start. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Users of the embedded server (see UserConfig). Empty (the default): no
	// login, every local client has full access. When set, this process logs
	// in as User/Password if given, else as a random full-access user.
	Users []UserConfig `yaml:"users"`
	// InboxPrefix of this connection's reply inboxes; default "_INBOX". A
	// connector with its own user sets InboxPrefix(name).
	InboxPrefix string `yaml:"inbox_prefix"`
	// Login is the generated login (CredentialsFile in DataDir) this process
	// uses when User and CredsFile are empty: LoginHub by default, a
	// component's own (LoginFor) when it runs alone. The embedded server
	// always requires a login; the file is made on its first start.
	Login string `yaml:"login"`
	// Connectors get a generated login each (ConnectorLogin) when the
	// embedded server starts. Set by the hub from its connector list.
	Connectors []string `yaml:"-"`
}

// DefaultDuplicateWindow is Config.DuplicateWindow when unset.
const DefaultDuplicateWindow = 5 * time.Minute

// WithDefaults fills every zero field with its default.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = filepath.Join("data", "nats")
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Port == 0 {
		c.Port = 4222
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.Name == "" {
		c.Name = "wxhub"
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.DLQMaxAge == 0 {
		c.DLQMaxAge = 30 * 24 * time.Hour
	}
	if c.StatusTTL == 0 {
		c.StatusTTL = 7 * 24 * time.Hour
	}
	if c.AuthTTL == 0 {
		c.AuthTTL = 10 * time.Minute
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	return c
}

// login is Login, LoginHub when empty.
func (c Config) login() string {
	if c.Login == "" {
		return LoginHub
	}
	return c.Login
}

// Validate checks the config after defaults; errors wrap ErrConfig and name the key.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: nats.replicas: %d, want 1..5", ErrConfig, c.Replicas)
	case c.Partitions < 1 || c.Partitions > 1024:
		return fmt.Errorf("%w: nats.partitions: %d, want 1..1024", ErrConfig, c.Partitions)
	case c.Port < -1 || c.Port > 65535:
		return fmt.Errorf("%w: nats.port: %d, want -1..65535", ErrConfig, c.Port)
	case c.DuplicateWindow < 0 || c.DuplicateWindow > c.MaxAge:
		return fmt.Errorf("%w: nats.duplicate_window: %s, want > 0 and <= max_age %s", ErrConfig, c.DuplicateWindow, c.MaxAge)
	case c.MaxAge < 0 || c.DLQMaxAge < 0 || c.StatusTTL < 0 || c.AuthTTL < 0:
		return fmt.Errorf("%w: nats: negative max age or ttl", ErrConfig)
	case c.CredsFile != "" && c.User != "":
		return fmt.Errorf("%w: nats.creds_file and nats.user are exclusive", ErrConfig)
	case c.Login != "" && !slices.Contains(componentLogins, c.Login) && !(strings.HasPrefix(c.Login, "connector-") && validUser.MatchString(c.Login)):
		return fmt.Errorf("%w: nats.login: %q, want one of %s or connector-<name>", ErrConfig, c.Login, strings.Join(componentLogins, ", "))
	case len(c.Users) > 0 && c.URL != "":
		return fmt.Errorf("%w: nats.users: only for the embedded server (nats.url is set; configure users on the cluster)", ErrConfig)
	}
	return validateUsers(c.Users)
}

// Bus is a connection to NATS with the wxhub streams declared. Safe for
// concurrent use; Close it once.
type Bus struct {
	cfg    Config
	log    *zap.Logger
	srv    *server.Server // nil when connected to an external cluster
	nc     *nats.Conn
	js     jetstream.JetStream
	closed chan struct{} // closed by the connection's ClosedHandler
	done   chan struct{} // closed by Close: background loops end

	reconnMu sync.Mutex
	reconn   map[int]func() // OnReconnect callbacks by id
	reconnID int

	// login is the generated login this connection uses ("" for a configured
	// user or none): one without ReadsTokens skips wxhub_tokens.
	login string

	// storageFault is the embedded store's write fault ("" while it writes).
	storageFault atomic.Value

	closeOnce sync.Once
	closeErr  error
}

// Open starts the embedded server when cfg.URL is empty (else connects to
// cfg.URL), then declares streams and KV buckets; declaring is idempotent, so
// every process may Open at start-up.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Bus, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	b := &Bus{cfg: cfg, log: log.Named("bus"), closed: make(chan struct{}), done: make(chan struct{})}

	url := cfg.URL
	if url == "" {
		if err := b.startEmbedded(); err != nil {
			return nil, err
		}
		url = b.srv.ClientURL()
		b.cfg.Replicas = 1
		if cfg.Replicas > 1 {
			b.log.Warn("embedded server is a single node; using 1 replica", zap.Int("configured", cfg.Replicas))
		}
	}
	if err := b.connect(ctx, url); err != nil {
		b.shutdownServer()
		return nil, err
	}
	if err := b.declareWait(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	if b.srv != nil {
		go b.keepJetStream(b.srv.JetStreamConfig())
	}
	return b, nil
}

// declareWait declares the streams and buckets, retrying with backoff while
// JetStream is not there yet (a cluster still electing its meta leader, a
// node starting): a process started before NATS waits instead of exiting.
// Only ctx or a refusal of the config itself (HTTP 400 class) ends it.
func (b *Bus) declareWait(ctx context.Context) error {
	return retryUntil(ctx, b.log, "waiting for JetStream to declare streams and buckets", func(actx context.Context) (bool, error) {
		err := b.Declare(actx)
		var ae *jetstream.APIError
		if errors.As(err, &ae) && ae.Code == 400 {
			return true, err // a bad config: waiting will not help
		}
		return err == nil, err
	})
}

// retryUntil calls try (each call bounded by attemptTimeout) until it reports
// done, backing off from 250 ms to 5 s, and logs what it waits for once per
// attempt after the first. It returns try's last error when ctx ends first.
func retryUntil(ctx context.Context, log *zap.Logger, what string, try func(context.Context) (done bool, err error)) error {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		done, err := try(actx)
		cancel()
		if done {
			return err
		}
		log.Warn(what, zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("%s: %w", what, err)
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// attemptTimeout bounds one attempt of a start-up wait.
const attemptTimeout = 10 * time.Second

func (b *Bus) startEmbedded() error {
	dir, err := filepath.Abs(b.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("bus: data dir %q: %w", b.cfg.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("bus: data dir: %w", err)
	}
	users, err := b.serverUsers(dir)
	if err != nil {
		return err
	}
	opts := &server.Options{
		ServerName: "wxhub",
		Host:       b.cfg.Host,
		Port:       b.cfg.Port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true, // the process owns signals, not the embedded server
		Users:      users,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("bus: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{b.log.Named("nats-server").Sugar()}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(b.cfg.ConnectTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("bus: embedded server on %s:%d not ready after %s (port in use?)", b.cfg.Host, b.cfg.Port, b.cfg.ConnectTimeout)
	}
	b.srv = srv
	b.log.Info("embedded NATS server started", zap.String("url", srv.ClientURL()), zap.String("store", dir))
	return nil
}

// connect dials url, retrying with backoff until ctx ends: a process started
// before NATS waits for it (and says so) instead of exiting.
func (b *Bus) connect(ctx context.Context, url string) error {
	return retryUntil(ctx, b.log, "waiting for NATS at "+redactURL(url), func(context.Context) (bool, error) {
		err := b.dial(url)
		if isAuthRefusal(err) {
			// Waiting will not fix a wrong login: say so and stop.
			return true, fmt.Errorf("%w (check nats.user/nats.password, nats.creds_file, or the generated credentials.json in the data dir)", err)
		}
		return err == nil, err
	})
}

// isAuthRefusal: the server refused this login (wrong user, password or
// credentials), not a server that is down or starting.
func isAuthRefusal(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

func (b *Bus) dial(url string) error {
	opts := []nats.Option{
		nats.Name(b.cfg.Name),
		nats.Timeout(b.cfg.ConnectTimeout),
		nats.MaxReconnects(-1), // a hub must come back by itself after a broker outage
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("NATS disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("NATS reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.reconnected()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Error("NATS async error", zap.String("subject", subj), zap.Error(err))
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
	}
	if b.srv != nil {
		// The embedded server's own connection skips the loopback socket, which
		// every message would cross several times (publish, PubAck, delivery,
		// ack). Other processes still connect over TCP (ClientURL).
		opts = append(opts, nats.InProcessServer(b.srv))
	}
	if b.cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(b.cfg.InboxPrefix))
	}
	if b.cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.CredsFile))
	}
	if b.cfg.User == "" && b.cfg.CredsFile == "" && b.srv == nil {
		// A process of this install connecting to its embedded server: the
		// generated login, when the data dir has them.
		if c, err := LoadCredentials(b.cfg.DataDir); err == nil && c.Users[b.cfg.login()] != "" {
			login := b.cfg.login()
			b.cfg.User, b.cfg.Password, b.login = login, c.Users[login], login
		}
	}
	if b.cfg.User != "" {
		opts = append(opts, nats.UserInfo(b.cfg.User, b.cfg.Password))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("bus: connect %s: %w", redactURL(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("bus: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return nil
}

// OnReconnect calls f (on a goroutine of its own) each time the connection
// comes back after a loss: a NATS server that restarted may have lost what
// was not on disk, so components declare their consumers again. remove
// unregisters f.
func (b *Bus) OnReconnect(f func()) (remove func()) {
	b.reconnMu.Lock()
	defer b.reconnMu.Unlock()
	if b.reconn == nil {
		b.reconn = map[int]func(){}
	}
	b.reconnID++
	id := b.reconnID
	b.reconn[id] = f
	return func() {
		b.reconnMu.Lock()
		defer b.reconnMu.Unlock()
		delete(b.reconn, id)
	}
}

func (b *Bus) reconnected() {
	b.reconnMu.Lock()
	fs := make([]func(), 0, len(b.reconn))
	for _, f := range b.reconn {
		fs = append(fs, f)
	}
	b.reconnMu.Unlock()
	for _, f := range fs {
		go f()
	}
}

// WaitKV opens bucket, waiting with backoff (and a log line) while it does
// not exist yet: a process that starts before the one that declares it.
func (b *Bus) WaitKV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retryUntil(ctx, b.log, "waiting for KV bucket "+bucket, func(actx context.Context) (bool, error) {
		var err error
		kv, err = b.js.KeyValue(actx, bucket)
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("bus: kv %s: %w", bucket, err)
	}
	return kv, nil
}

// Conn is the underlying connection (shared; do not close it).
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JS is the JetStream API on Conn.
func (b *Bus) JS() jetstream.JetStream { return b.js }

// Partitions is the configured number of route partitions per connector.
func (b *Bus) Partitions() int { return b.cfg.Partitions }

// Config returns the effective config (defaults applied).
func (b *Bus) Config() Config { return b.cfg }

// Embedded reports whether this Bus runs the NATS server in-process.
func (b *Bus) Embedded() bool { return b.srv != nil }

// ClientURL is the URL other connections use: the embedded server's, or the
// configured cluster URL list.
func (b *Bus) ClientURL() string {
	if b.srv != nil {
		return b.srv.ClientURL()
	}
	return b.cfg.URL
}

// KV opens one of the declared buckets.
func (b *Bus) KV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := b.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bus: kv %s: %w", bucket, err)
	}
	return kv, nil
}

// Ready reports whether the connection is up and every stream and bucket exists.
func (b *Bus) Ready(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w: NATS %s", ErrNotReady, b.nc.Status())
	}
	if err := b.jetStreamOK(ctx); err != nil {
		return err
	}
	for _, s := range []string{StreamIn, StreamRoute, StreamOut, StreamDLQ} {
		if _, err := b.js.Stream(ctx, s); err != nil {
			return fmt.Errorf("%w: stream %s: %w", ErrNotReady, s, err)
		}
	}
	for _, k := range []string{BucketTokens, BucketDND, BucketStatus, BucketAuth, BucketSessions, BucketOIDCKeys, BucketOIDC, BucketPIN, BucketDirectory} {
		if k == BucketTokens && !b.readsTokens() {
			continue
		}
		if _, err := b.js.KeyValue(ctx, k); err != nil {
			return fmt.Errorf("%w: bucket %s: %w", ErrNotReady, k, err)
		}
	}
	return nil
}

// readsTokens: this connection may touch wxhub_tokens.
func (b *Bus) readsTokens() bool { return b.login == "" || ReadsTokens(b.login) }

// Close drains the connection (in-flight publishes and acks finish), then stops
// the embedded server and waits for it. Safe to call more than once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		if b.done != nil {
			close(b.done)
		}
		if b.nc != nil {
			if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				b.closeErr = fmt.Errorf("bus: drain: %w", err)
				b.nc.Close()
			}
			select {
			case <-b.closed:
			case <-time.After(b.cfg.ConnectTimeout + 30*time.Second): // DrainTimeout is 30s
				b.nc.Close()
			}
		}
		b.shutdownServer()
	})
	return b.closeErr
}

func (b *Bus) shutdownServer() {
	if b.srv == nil {
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	b.log.Info("embedded NATS server stopped")
}

func redactURL(u string) string {
	// nats URLs may hold user:password@; never log them.
	parts := strings.Split(u, ",")
	for i, p := range parts {
		at := strings.LastIndexByte(p, '@')
		if at < 0 {
			continue
		}
		scheme := ""
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			scheme = p[:j+3]
		}
		parts[i] = scheme + "***@" + p[at+1:]
	}
	return strings.Join(parts, ",")
}

// serverLogger sends the embedded server's log lines to zap.
type serverLogger struct{ s *zap.SugaredLogger }

func (l serverLogger) Noticef(f string, v ...any) { l.s.Debugf(f, v...) }
func (l serverLogger) Warnf(f string, v ...any)   { l.s.Warnf(f, v...) }
func (l serverLogger) Fatalf(f string, v ...any)  { l.s.Errorf(f, v...) }
func (l serverLogger) Errorf(f string, v ...any)  { l.s.Errorf(f, v...) }
func (l serverLogger) Debugf(f string, v ...any)  { l.s.Debugf(f, v...) }
func (l serverLogger) Tracef(f string, v ...any)  { l.s.Debugf(f, v...) }

// WaitFor calls try until it returns nil, backing off from 250 ms to 5 s
// (each call bounded by 10 s) and logging "waiting for <what>" after each
// failure; it returns the last error once ctx ends. For start-up steps that
// need another component or NATS to be up first: start in any order.
func WaitFor(ctx context.Context, log *zap.Logger, what string, try func(context.Context) error) error {
	if log == nil {
		log = zap.NewNop()
	}
	return retryUntil(ctx, log, "waiting for "+what, func(actx context.Context) (bool, error) {
		err := try(actx)
		return err == nil, err
	})
}
