package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/oauth"
)

// ErrConfig is wrapped by configuration errors; the message names the key.
var ErrConfig = errors.New("directory: invalid config")

// Config is the directory: section.
//
//	directory:
//	  app: contacts            # the app whose token reads its corp's address book
//	  apps: [supplier-helpdesk] # another corp's (wecom.corps[]); default: its first app
//	  sync_interval: 6h
//	  employee_no_attr: 工号
type Config struct {
	// App is the WeCom app whose access token reads the contacts APIs of its
	// corp (it needs the address book in its visible range). Required.
	App string `yaml:"app"`
	// Apps name, for the other corps of wecom.corps[], the app that reads
	// each one's address book (one app per corp). A corp named by neither
	// App nor Apps is read with its first app.
	Apps []string `yaml:"apps"`
	// SyncInterval between full syncs. Default 6h; at least 1m.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// EmployeeNoAttr is the custom field (extattr, text) holding the employee
	// number. Default "工号".
	EmployeeNoAttr string `yaml:"employee_no_attr"`
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.SyncInterval == 0 {
		c.SyncInterval = 6 * time.Hour
	}
	if c.EmployeeNoAttr == "" {
		c.EmployeeNoAttr = "工号"
	}
	return c
}

// Validate names the first bad key.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.App == "":
		return fmt.Errorf("%w: directory.app: is required", ErrConfig)
	case c.SyncInterval < time.Minute:
		return fmt.Errorf("%w: directory.sync_interval: at least 1m, got %s", ErrConfig, c.SyncInterval)
	}
	return nil
}

// Corp is one corp whose address book a Syncer caches.
type Corp struct {
	ID    string // the corp id
	App   string // the app whose token reads its contacts APIs
	First bool   // the hub's first corp: its keys carry no corp (bus.DirPrefix)
}

// Corps are the corps of w (wecom.Config after WithDefaults), the first
// first, each with the app that reads its address book: App for its corp,
// else the one of Apps in that corp, else the corp's first app. An app of
// App or Apps that w does not have, or a second app for one corp, is an
// error naming the key.
func (c Config) Corps(w wecom.Config) ([]Corp, error) {
	ids := w.CorpIDs()
	byCorp := map[string]string{}
	for i, name := range append([]string{c.App}, c.Apps...) {
		key := "directory.app"
		if i > 0 {
			key = fmt.Sprintf("directory.apps[%d]", i-1)
		}
		a, ok := w.App(name)
		if !ok {
			return nil, fmt.Errorf("%w: %s: no WeCom app named %q", ErrConfig, key, name)
		}
		corp := w.CorpOf(a)
		if prev, dup := byCorp[corp]; dup {
			return nil, fmt.Errorf("%w: %s: %q is in corp %s, whose address book %q reads already", ErrConfig, key, name, corp, prev)
		}
		byCorp[corp] = name
	}
	var out []Corp
	for i, id := range ids {
		app := byCorp[id]
		if app == "" {
			for _, a := range w.Apps {
				if w.CorpOf(a) == id {
					app = a.Name
					break
				}
			}
		}
		if app == "" {
			continue // a corp without apps: nothing can read it
		}
		out = append(out, Corp{ID: id, App: app, First: i == 0})
	}
	return out, nil
}

// TokenSource returns the app's access token; fresh after WeCom called it
// expired (the gateway's source: the sender's shared token, else gettoken).
type TokenSource = oauth.TokenSource

// Syncer keeps one corp's directory in the wxhub_directory bucket in step
// with WeCom; the hub runs one per corp.
type Syncer struct {
	cfg    Config
	corp   Corp
	prefix string // the corp's key prefix (bus.DirPrefix)
	kv     jetstream.KeyValue
	client *wecom.Client
	token  TokenSource
	now    func() time.Time
	log    *zap.Logger
}

// NewSyncer returns the syncer of corp (one of cfg.Corps); Run starts it.
func NewSyncer(cfg Config, corp Corp, kv jetstream.KeyValue, client *wecom.Client, token TokenSource, log *zap.Logger) (*Syncer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if corp.App == "" {
		return nil, fmt.Errorf("%w: directory.app: no app reads corp %q", ErrConfig, corp.ID)
	}
	if log == nil {
		log = zap.NewNop()
	}
	prefix := bus.DirPrefix(corp.ID)
	if corp.First {
		prefix = bus.DirPrefix("")
	}
	return &Syncer{cfg: cfg.WithDefaults(), corp: corp, prefix: prefix, kv: kv, client: client, token: token, now: time.Now,
		log: log.Named("directory").With(zap.String("corp", corp.ID))}, nil
}

// withToken runs call with the app's token, once more with a fresh one if
// WeCom calls it expired.
func (s *Syncer) withToken(ctx context.Context, call func(tok string) error) error {
	tok, err := s.token(ctx, s.corp.App, false)
	if err != nil {
		return fmt.Errorf("directory: token of %s: %w", s.corp.App, err)
	}
	err = call(tok)
	if wecom.IsTokenExpired(err) {
		if tok, err = s.token(ctx, s.corp.App, true); err != nil {
			return fmt.Errorf("directory: token of %s: %w", s.corp.App, err)
		}
		err = call(tok)
	}
	return err
}

// Stats count what a full sync wrote and removed.
type Stats struct {
	Users, Departments, Tags, Removed int
}

func (s *Syncer) user(m wecom.Member, tags []int64, now time.Time) schemas.DirUser {
	return schemas.DirUser{
		UserID: m.UserID, Name: m.Name, Departments: m.Department, MainDepartment: m.MainDepartment,
		Position: m.Position, IsLeaderInDept: m.IsLeaderInDept, DirectLeader: m.DirectLeader,
		EmployeeNo: m.Attr(s.cfg.EmployeeNoAttr), Email: m.Email, Status: m.Status, Tags: tags, SyncedAt: now,
	}
}

func (s *Syncer) put(ctx context.Context, key string, v any) error {
	data, _ := json.Marshal(v)
	if _, err := s.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("directory: write %s: %w", key, err)
	}
	return nil
}

// FullSync reads every department, member and tag of the corp and replaces
// its directory with them (entries WeCom no longer has are removed; other
// corps' are left alone).
func (s *Syncer) FullSync(ctx context.Context) (Stats, error) {
	var st Stats
	now := s.now().UTC()
	var depts []wecom.Department
	var members []wecom.Member
	var tags []wecom.Tag
	tagInfo := map[int64]wecom.TagMembers{}
	err := s.withToken(ctx, func(tok string) error {
		var err error
		if depts, err = s.client.ListDepartments(ctx, tok, 0); err != nil {
			return err
		}
		members, tagInfo = nil, map[int64]wecom.TagMembers{}
		seen := map[string]bool{}
		for _, d := range depts {
			if slices.ContainsFunc(depts, func(p wecom.Department) bool { return p.ID == d.ParentID }) {
				continue // not a root of the visible range: fetched with its root
			}
			ms, err := s.client.ListMembers(ctx, tok, d.ID, true)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if !seen[m.UserID] {
					seen[m.UserID] = true
					members = append(members, m)
				}
			}
		}
		if tags, err = s.client.ListTags(ctx, tok); err != nil {
			return err
		}
		for _, t := range tags {
			ti, err := s.client.GetTag(ctx, tok, t.ID)
			if err != nil {
				return err
			}
			tagInfo[t.ID] = ti
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("directory: full sync: %w", err)
	}
	userTags := map[string][]int64{}
	keep := map[string]bool{}
	for _, t := range tags {
		ti := tagInfo[t.ID]
		rec := schemas.DirTag{ID: t.ID, Name: t.Name, Parties: ti.Parties, SyncedAt: now}
		for _, u := range ti.Users {
			rec.Users = append(rec.Users, u.UserID)
			userTags[u.UserID] = append(userTags[u.UserID], t.ID)
		}
		if err := s.put(ctx, bus.DirTagKey(s.prefix, t.ID), rec); err != nil {
			return st, err
		}
		keep[bus.DirTagKey(s.prefix, t.ID)] = true
		st.Tags++
	}
	for _, d := range depts {
		rec := schemas.DirDepartment{ID: d.ID, Name: d.Name, ParentID: d.ParentID, Order: d.Order, Leaders: d.Leaders, SyncedAt: now}
		if err := s.put(ctx, bus.DirDeptKey(s.prefix, d.ID), rec); err != nil {
			return st, err
		}
		keep[bus.DirDeptKey(s.prefix, d.ID)] = true
		st.Departments++
	}
	for _, m := range members {
		if err := s.put(ctx, bus.DirUserKey(s.prefix, m.UserID), s.user(m, userTags[m.UserID], now)); err != nil {
			return st, err
		}
		keep[bus.DirUserKey(s.prefix, m.UserID)] = true
		st.Users++
	}
	lister, err := s.kv.ListKeysFiltered(ctx, s.prefix+"user.>", s.prefix+"dept.>", s.prefix+"tag.>")
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return st, fmt.Errorf("directory: list keys: %w", err)
	}
	if lister != nil {
		var stale []string
		for k := range lister.Keys() {
			if !keep[k] {
				stale = append(stale, k)
			}
		}
		for _, k := range stale {
			if err := s.kv.Delete(ctx, k); err == nil {
				st.Removed++
			}
		}
	}
	_ = s.put(ctx, bus.DirMetaKey(s.prefix), map[string]any{"synced_at": now, "users": st.Users, "departments": st.Departments, "tags": st.Tags})
	s.log.Info("directory synced", zap.Int("users", st.Users), zap.Int("departments", st.Departments),
		zap.Int("tags", st.Tags), zap.Int("removed", st.Removed))
	return st, nil
}

// Refresh re-reads what one change_contact named.
func (s *Syncer) Refresh(ctx context.Context, req schemas.DirRefresh) error {
	now := s.now().UTC()
	switch req.Kind {
	case "user":
		var m wecom.Member
		err := s.withToken(ctx, func(tok string) (err error) { m, err = s.client.GetMember(ctx, tok, req.ID); return err })
		if wecom.APICode(err) == wecom.CodeUserNotFound {
			return s.kv.Delete(ctx, bus.DirUserKey(s.prefix, req.ID))
		}
		if err != nil {
			return err
		}
		// user/get carries no tags: keep what the last tag sync said.
		var tags []int64
		if e, err := s.kv.Get(ctx, bus.DirUserKey(s.prefix, m.UserID)); err == nil {
			var old schemas.DirUser
			if json.Unmarshal(e.Value(), &old) == nil {
				tags = old.Tags
			}
		}
		return s.put(ctx, bus.DirUserKey(s.prefix, m.UserID), s.user(m, tags, now))
	case "dept":
		id, err := strconv.ParseInt(req.ID, 10, 64)
		if err != nil {
			return fmt.Errorf("directory: refresh: department id %q", req.ID)
		}
		var ds []wecom.Department
		err = s.withToken(ctx, func(tok string) (err error) { ds, err = s.client.ListDepartments(ctx, tok, id); return err })
		if c := wecom.APICode(err); c == wecom.CodeDepartmentNotFound || c == 60123 {
			return s.kv.Delete(ctx, bus.DirDeptKey(s.prefix, id))
		}
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.ID == id {
				return s.put(ctx, bus.DirDeptKey(s.prefix, id), schemas.DirDepartment{ID: d.ID, Name: d.Name, ParentID: d.ParentID, Order: d.Order, Leaders: d.Leaders, SyncedAt: now})
			}
		}
		return s.kv.Delete(ctx, bus.DirDeptKey(s.prefix, id))
	case "tag":
		// A tag change moves members in and out: a full sync gets every side right.
		_, err := s.FullSync(ctx)
		return err
	default:
		_, err := s.FullSync(ctx)
		return err
	}
}

// Run syncs the corp now and every SyncInterval, and serves the corp's
// refresh requests the directorysync connector writes (the first corp also
// those without a corp), until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	if _, err := s.FullSync(ctx); err != nil {
		s.log.Warn("directory full sync failed; retried at the next interval", zap.Error(err))
	}
	w, err := s.kv.WatchFiltered(ctx, bus.DirRefreshFilters(s.corp.ID, s.corp.First))
	if err != nil {
		return fmt.Errorf("directory: watch refresh requests: %w", err)
	}
	defer w.Stop()
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.FullSync(ctx); err != nil {
				s.log.Warn("directory full sync failed", zap.Error(err))
			}
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("directory: refresh watch closed")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			s.serve(ctx, e)
		}
	}
}

// serve handles one refresh request and removes it (only the revision it
// handled: a newer request for the same entry stays for the next round).
func (s *Syncer) serve(ctx context.Context, e jetstream.KeyValueEntry) {
	var req schemas.DirRefresh
	if err := json.Unmarshal(e.Value(), &req); err != nil {
		s.log.Warn("unreadable refresh request dropped", zap.String("key", e.Key()))
		_ = s.kv.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
		return
	}
	if err := s.Refresh(ctx, req); err != nil {
		s.log.Warn("directory refresh failed; the next full sync repairs it", zap.String("kind", req.Kind), zap.String("id", req.ID), zap.Error(err))
	} else {
		s.log.Info("directory refreshed", zap.String("kind", req.Kind), zap.String("id", req.ID), zap.String("change", req.ChangeType))
	}
	_ = s.kv.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
}
