// Package fileshare is the file share connector: an employee types or says a
// file's name ("上周的销售周报", "合同模板", "xszb") and gets the file in the
// WeCom chat, from the company's local and WebDAV shares, only if allowed to
// see it. See docs/connectors/fileshare.md.
package fileshare

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/internal/media"
	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/schemas"
)

// Deps are what a Connector needs besides its Config.
type Deps struct {
	// Bus: the media store (files sent), the conversation bucket (lists) and
	// the sender's media fetch service (voice). Required.
	Bus *bus.Bus
	// Logger; nil: none. Deliveries are logged at info (the audit log).
	Logger *zap.Logger
	// Directory resolves departments and tags; nil: Config.Directory.
	Directory Directory
	// Transcriber for WeCom voice; nil: the one Config.Transcriber describes, if any.
	Transcriber transcribe.Transcriber
	// Now is the clock (recency words, list expiry, links). Default time.Now.
	Now func() time.Time
	// Corp is the hub's first corp: the default of a source's corp and of an
	// event without data.corp. "" (outside a hub): a source without a corp
	// rule serves every corp.
	Corp string
}

// Connector is the file share handler. Create with New; safe for concurrent use.
type Connector struct {
	name    string
	cfg     Config
	bus     *bus.Bus
	log     *zap.Logger
	dir     Directory
	tr      transcribe.Transcriber
	now     func() time.Time
	corp    string // the hub's first corp (Deps.Corp)
	index   *Index
	sources map[string]source
	access  map[string]SourceConfig
	secret  []byte
	scanned chan struct{}
	fresh   bool // no saved index: searches wait for the first scan
	stop    context.CancelFunc
	stopped chan struct{} // closed when the scanners, watchers and saver ended

	kvMu sync.Mutex
	kv   jetstream.KeyValue
}

// New loads the index snapshot, starts scanning and watching the sources in
// the background until ctx ends or Close (then saves the index), and returns
// the handler. The snapshot answers searches while the first scan runs.
func New(ctx context.Context, name string, cfg Config, deps Deps) (*Connector, error) {
	cfg = cfg.WithDefaults(name)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil {
		return nil, errors.New("fileshare: a bus is required")
	}
	c := &Connector{name: name, cfg: cfg, bus: deps.Bus, log: deps.Logger, dir: deps.Directory, tr: deps.Transcriber,
		now: deps.Now, corp: deps.Corp, sources: map[string]source{}, access: map[string]SourceConfig{}, scanned: make(chan struct{})}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.dir == nil {
		c.dir = cfg.Directory
	}
	if c.tr == nil {
		tr, err := transcribe.New(cfg.Transcriber)
		if err != nil {
			return nil, fmt.Errorf("transcriber: %w", err)
		}
		c.tr = tr
	}
	if cfg.Link.Secret != "" {
		c.secret = []byte(cfg.Link.Secret)
	} else {
		c.secret = make([]byte, 32)
		_, _ = rand.Read(c.secret)
	}
	idx, err := Load(cfg.IndexPath)
	if err != nil {
		c.log.Warn("index snapshot unreadable; scanning from scratch", zap.Error(err))
		idx = NewIndex()
	}
	c.index = idx
	c.fresh = len(idx.sourceNames()) == 0
	for _, s := range cfg.Sources {
		c.access[s.Name] = s
		switch s.Kind {
		case "webdav":
			c.sources[s.Name] = newDAVSource(s.Name, s, cfg.ScanInterval)
		default:
			c.sources[s.Name] = &dirSource{name: s.Name, root: s.Root, rescan: cfg.Rescan}
		}
	}
	for name := range c.index.sourceNames() {
		if _, ok := c.sources[name]; !ok {
			c.index.RemoveSource(name) // a source taken out of the config
		}
	}
	ctx, c.stop = context.WithCancel(ctx)
	c.start(ctx)
	Links.register(name, c)
	return c, nil
}

// Close stops scanning and watching, saves the index and returns once every
// background goroutine has ended. The hub calls it after the runner stopped.
func (c *Connector) Close() error {
	c.stop()
	<-c.stopped
	return nil
}

func (c *Connector) start(ctx context.Context) {
	c.stopped = make(chan struct{})
	var scans, all sync.WaitGroup
	for name, s := range c.sources {
		scans.Add(1)
		all.Go(func() {
			if err := s.scan(ctx, c.index); err != nil {
				c.log.Warn("first scan failed; searching the saved index", zap.String("source", name), zap.Error(err))
			}
			scans.Done()
			s.watch(ctx, c.index, c.log)
		})
	}
	all.Go(func() {
		scans.Wait()
		c.save()
		close(c.scanned)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				c.save()
				return
			case <-t.C:
				c.save()
			}
		}
	})
	go func() {
		all.Wait()
		close(c.stopped)
	}()
}

func (c *Connector) save() {
	if err := c.index.Save(c.cfg.IndexPath, c.now()); err != nil {
		c.log.Warn("saving the index", zap.Error(err))
	}
}

// firstScanWait bounds how long a search waits for the first scan of a
// connector that started without a saved index.
const firstScanWait = 20 * time.Second

// Scanned is closed when every source's first scan has ended (and the index
// was saved).
func (c *Connector) Scanned() <-chan struct{} { return c.scanned }

// Index is the connector's index.
func (c *Connector) Index() *Index { return c.index }

var choiceRE = regexp.MustCompile(`^\s*([1-9])\s*$`)

// Handle answers a search (text or voice) or a list's number.
func (c *Connector) Handle(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
	if c.fresh {
		// Without a saved index, "not found" before the first scan would be a lie.
		select {
		case <-c.scanned:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(firstScanWait):
		}
	}
	d := ev.Data
	user := d.User
	var text string
	switch d.MsgType {
	case "text":
		text = strings.TrimSpace(d.Content)
	case "voice":
		t, err := c.voiceText(ctx, ev)
		if err != nil {
			return nil, err
		}
		text = t
	default:
		return nil, nil
	}
	if m := choiceRE.FindStringSubmatch(text); m != nil && d.MsgType == "text" {
		n, _ := strconv.Atoi(m[1])
		return c.choose(ctx, ev, n)
	}
	q := strings.TrimSpace(text)
	if len(Terms(q)) == 0 {
		return nil, connectors.Tell(nil, "请告诉我要找的文件名，例如：找 销售周报")
	}
	allowed, err := c.allowed(ctx, ev.Data.Corp, user)
	if err != nil {
		return nil, err
	}
	hits := c.search(q, allowed)
	switch {
	case len(hits) == 0:
		return []connectors.Reply{connectors.Text(user, c.noneText(q, allowed))}, nil
	case clear(hits, ParseRecency(q)):
		return c.deliver(ctx, ev, hits[0].Entry)
	}
	if len(hits) > c.cfg.ListSize {
		hits = hits[:c.cfg.ListSize]
	}
	p := Pending{Query: q, ExpiresAt: c.now().Add(c.cfg.Timeout)}
	var b strings.Builder
	fmt.Fprintf(&b, "找到 %d 个文件，请回复序号获取：", len(hits))
	for i, h := range hits {
		p.Choices = append(p.Choices, Choice{Source: h.Source, Path: h.Path})
		fmt.Fprintf(&b, "\n%d. %s（%s，%s）", i+1, h.Name(), h.ModTime.In(c.now().Location()).Format("2006-01-02"), humanSize(h.Size))
	}
	fmt.Fprintf(&b, "\n%d 分钟内有效。", int(c.cfg.Timeout.Minutes()+0.5))
	if err := c.putPending(ctx, user, p); err != nil {
		return nil, err
	}
	return []connectors.Reply{connectors.Text(user, b.String())}, nil
}

// search ranks the allowed files for q, narrowed by a recency word when that
// leaves any.
func (c *Connector) search(q string, allowed map[string]bool) []Hit {
	hits := c.index.Search(q, func(s string) bool { return allowed[s] }, 0)
	r := ParseRecency(q)
	if r == RecencyLastWeek || r == RecencyThisWeek {
		now := c.now()
		var in []Hit
		for _, h := range hits {
			if r.Within(h.ModTime.In(now.Location()), now) {
				in = append(in, h)
			}
		}
		if len(in) > 0 {
			hits = in
		}
	}
	if r == RecencyNewest {
		slices.SortStableFunc(hits, func(a, b Hit) int { return b.ModTime.Compare(a.ModTime) })
	}
	return hits
}

// clear: one hit, a hit clearly better than the next, "the newest", or the
// newest issue of a series (销售周报-第47周 over 第46周: same name but for its
// numbers, same score), which is what a bare "销售周报" asks for.
func clear(hits []Hit, r Recency) bool {
	return len(hits) == 1 || hits[0].Score >= hits[1].Score+20 || r == RecencyNewest ||
		(hits[0].Score == hits[1].Score && series(hits[0].Name()) == series(hits[1].Name()))
}

// series is a name without its digits and extension.
func series(name string) string {
	name = strings.TrimSuffix(name, path.Ext(name))
	return strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return -1
		}
		return r
	}, name)
}

func (c *Connector) noneText(q string, allowed map[string]bool) string {
	var names []string
	seen := map[string]bool{}
	for _, t := range Terms(q) {
		for _, g := range append(slices.Clone(t.grams), firstRunes(t.text, 2)) {
			for _, h := range c.index.Search(g, func(s string) bool { return allowed[s] }, 3) {
				if n := h.Name(); !seen[n] && len(names) < 3 {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("没有找到「%s」。可以换个关键词，或用拼音首字母（如 xszb 找销售周报）。", q)
	}
	return fmt.Sprintf("没有找到「%s」。您要找的是不是：\n· %s", q, strings.Join(names, "\n· "))
}

func firstRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// choose delivers the n-th file of the user's pending list.
func (c *Connector) choose(ctx context.Context, ev *schemas.Event, n int) ([]connectors.Reply, error) {
	p, ok, err := c.getPending(ctx, ev.Data.User)
	if err != nil {
		return nil, err
	}
	if !ok || !c.now().Before(p.ExpiresAt) {
		return nil, connectors.Tell(nil, "没有待选择的文件列表（或已过期）。请发送：找 <文件名>")
	}
	if n > len(p.Choices) {
		return nil, connectors.Tell(nil, fmt.Sprintf("请回复 1 到 %d 之间的序号。", len(p.Choices)))
	}
	ch := p.Choices[n-1]
	allowed, err := c.allowed(ctx, ev.Data.Corp, ev.Data.User) // rights may have changed since the list
	if err != nil {
		return nil, err
	}
	e, ok := c.index.Get(ch.Source, ch.Path)
	if !ok || !allowed[ch.Source] {
		return nil, connectors.Tell(nil, "这个文件已不存在，请重新查找。")
	}
	replies, err := c.deliver(ctx, ev, e)
	if err == nil {
		c.deletePending(ctx, ev.Data.User)
	}
	return replies, err
}

// deliver sends the file, or a link when it is over the size limit.
func (c *Connector) deliver(ctx context.Context, ev *schemas.Event, e Entry) ([]connectors.Reply, error) {
	user := ev.Data.User
	// An Official Account sends files through its own media API, which the
	// sender does not resolve: a customer gets the link.
	if e.Size > c.cfg.MaxFileSize || ev.Data.Channel == schemas.ChannelMP {
		return c.link(ev, e)
	}
	src := c.sources[e.Source]
	r, err := src.open(ctx, e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		c.index.Remove(e.Source, e.Path)
		return nil, connectors.Tell(err, "这个文件刚被移走或删除了，请重新查找。")
	}
	if err != nil {
		return nil, fmt.Errorf("fileshare: open %s/%s: %w", e.Source, e.Path, err) // retried
	}
	defer r.Close()
	ref, err := connectors.PutMedia(ctx, c.bus, e.Name(), io.LimitReader(r, c.cfg.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if ref.Size > c.cfg.MaxFileSize { // grew since it was indexed
		return c.link(ev, e)
	}
	c.audit(ev, e, "file", ref.Size)
	return []connectors.Reply{connectors.FileObject(user, ref)}, nil
}

func (c *Connector) link(ev *schemas.Event, e Entry) ([]connectors.Reply, error) {
	limit := humanSize(c.cfg.MaxFileSize)
	if c.cfg.Link.BaseURL == "" {
		return nil, connectors.Tell(nil, fmt.Sprintf("文件「%s」有 %s，超过企业微信 %s 的限制，无法直接发送；请联系管理员开启下载链接。", e.Name(), humanSize(e.Size), limit))
	}
	url := strings.TrimRight(c.cfg.Link.BaseURL, "/") + LinkPath + c.sign(linkClaims{Instance: c.name, Source: e.Source, Path: e.Path, User: ev.Data.User, Corp: ev.Data.Corp,
		Expires: c.now().Add(c.cfg.Link.TTL).Unix()})
	c.audit(ev, e, "link", e.Size)
	text := fmt.Sprintf("文件「%s」有 %s，超过企业微信 %s 的限制。请在 %s 内通过下面的链接下载（仅限您本人）：\n%s",
		e.Name(), humanSize(e.Size), limit, ttlText(c.cfg.Link.TTL), url)
	if ev.Data.Channel == schemas.ChannelMP && e.Size <= c.cfg.MaxFileSize {
		text = fmt.Sprintf("文件「%s」（%s）请在 %s 内通过下面的链接下载：\n%s", e.Name(), humanSize(e.Size), ttlText(c.cfg.Link.TTL), url)
	}
	return []connectors.Reply{connectors.Text(ev.Data.User, text)}, nil
}

// audit logs a delivery: who got which file, when and how; never content.
func (c *Connector) audit(ev *schemas.Event, e Entry, via string, size int64) {
	c.log.Info("fileshare delivery", zap.String("user", ev.Data.User), zap.String("app", ev.Data.App),
		zap.String("source", e.Source), zap.String("path", e.Path), zap.Int64("size", size),
		zap.String("via", via), zap.Time("at", c.now()), zap.String("event", ev.ID))
}

// allowed is the set of sources user of corp ("": the hub's first) may see:
// only sources of the user's own corp, whose rules name the user, one of
// their departments or tags, or everyone.
func (c *Connector) allowed(ctx context.Context, corp, user string) (map[string]bool, error) {
	out := map[string]bool{}
	var depts, tags []int
	var looked bool
	corp = cmp.Or(corp, c.corp)
	for name, s := range c.access {
		if sc := cmp.Or(s.Corp, c.corp); sc != "" && sc != corp {
			continue
		}
		if s.Everyone || slices.Contains(s.Users, user) {
			out[name] = true
			continue
		}
		if len(s.Departments) == 0 && len(s.Tags) == 0 {
			continue
		}
		if !looked {
			var err error
			if depts, err = c.dir.Departments(ctx, corp, user); err != nil {
				return nil, fmt.Errorf("fileshare: directory: %w", err)
			}
			if tags, err = c.dir.Tags(ctx, corp, user); err != nil {
				return nil, fmt.Errorf("fileshare: directory: %w", err)
			}
			looked = true
		}
		if overlaps(s.Departments, depts) || overlaps(s.Tags, tags) {
			out[name] = true
		}
	}
	return out, nil
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// voiceText is the text of a voice message: WeChat's Recognition (Official
// Accounts, or the router's transcript when router.transcriber is set), else
// the transcriber's reading of the audio fetched through the sender.
func (c *Connector) voiceText(ctx context.Context, ev *schemas.Event) (string, error) {
	d := ev.Data
	if r := strings.TrimSpace(d.Recognition); r != "" {
		return r, nil
	}
	if d.Channel == schemas.ChannelMP {
		return "", connectors.Tell(nil, "没有听清，请再说一遍或发送文字，例如：找 销售周报")
	}
	if c.tr == nil {
		return "", connectors.Tell(nil, "语音查找文件未开启，请发送文字，例如：找 销售周报")
	}
	// The audio through the hub's inbound media cache, fetched by the sender.
	rc, obj, _, err := media.NewInbound(c.bus, media.SenderFetch(c.bus)).Open(ctx, d.App, d.MediaID)
	if err != nil {
		return "", fmt.Errorf("fileshare: fetch voice: %w", err)
	}
	defer rc.Close()
	text, err := c.tr.Transcribe(ctx, rc, obj.Filename, d.Format)
	if err != nil {
		return "", err
	}
	if text == "" {
		return "", connectors.Tell(nil, "没有听清，请再说一遍或发送文字，例如：找 销售周报")
	}
	return text, nil
}

// Pending is a list waiting for the user's number: the value of
// bus.BucketFileshare, key pendingKey(instance, user).
type Pending struct {
	Query     string    `json:"query"`
	Choices   []Choice  `json:"choices"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Choice is one listed file.
type Choice struct {
	Source string `json:"source"`
	Path   string `json:"path"`
}

// pendingKey: <instance>.<hex of the user id> (user ids may hold characters
// KV keys do not allow).
func pendingKey(instance, user string) string {
	return bus.Token(instance) + "." + hex.EncodeToString([]byte(user))
}

func (c *Connector) conversations(ctx context.Context) (jetstream.KeyValue, error) {
	c.kvMu.Lock()
	defer c.kvMu.Unlock()
	if c.kv != nil {
		return c.kv, nil
	}
	kv, err := c.bus.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketFileshare,
		Description: "wxhub: file share lists waiting for the user's number", History: 1, TTL: bus.FileshareTTL})
	if err != nil {
		return nil, err
	}
	c.kv = kv
	return kv, nil
}

func (c *Connector) putPending(ctx context.Context, user string, p Pending) error {
	kv, err := c.conversations(ctx)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(p)
	_, err = kv.Put(ctx, pendingKey(c.name, user), raw)
	return err
}

func (c *Connector) getPending(ctx context.Context, user string) (Pending, bool, error) {
	kv, err := c.conversations(ctx)
	if err != nil {
		return Pending{}, false, err
	}
	e, err := kv.Get(ctx, pendingKey(c.name, user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Pending{}, false, nil
	}
	if err != nil {
		return Pending{}, false, err
	}
	var p Pending
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return Pending{}, false, nil
	}
	return p, true, nil
}

func (c *Connector) deletePending(ctx context.Context, user string) {
	if kv, err := c.conversations(ctx); err == nil {
		_ = kv.Delete(ctx, pendingKey(c.name, user))
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func ttlText(d time.Duration) string {
	if d >= time.Hour {
		return fmt.Sprintf("%d 小时", int(d.Hours()+0.5))
	}
	return fmt.Sprintf("%d 分钟", int(d.Minutes()+0.5))
}
