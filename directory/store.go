// Package directory is the hub's cached copy of the WeCom address book of
// each corp: departments, members (departments, position, leader flags,
// direct leaders, employee number, tags) and tags, kept in the
// wxhub_directory bucket under the corp's key prefix (bus.DirPrefix). One
// Syncer per corp fills its directory by a full sync at start and on a
// schedule, and refreshes single entries on the requests the directorysync
// connector writes when WeCom reports a change_contact in that corp. The
// Store is a live in-memory mirror of the bucket for reads by corp (User,
// DepartmentMembers, TagMembers, Expand); Handler serves the read API. See
// docs/identity.md.
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// ErrNotFound: no such user, department or tag in the directory.
var ErrNotFound = errors.New("directory: not found")

// ErrUnknownCorp: a corp the hub does not serve.
var ErrUnknownCorp = errors.New("directory: unknown corp")

// book is one corp's directory.
type book struct {
	users map[string]schemas.DirUser
	depts map[int64]schemas.DirDepartment
	tags  map[int64]schemas.DirTag
}

func newBook() *book {
	return &book{users: map[string]schemas.DirUser{}, depts: map[int64]schemas.DirDepartment{}, tags: map[int64]schemas.DirTag{}}
}

// Store mirrors the wxhub_directory bucket in memory through a KV watch, so
// every replica answers from the same data, a change in one replica's sync is
// seen by all, and reads cost no round trip. It holds every corp's directory;
// each read names the corp ("" is the hub's first). Safe for concurrent use.
type Store struct {
	kv    jetstream.KeyValue
	log   *zap.Logger
	first string   // the first corp's id: its keys carry no corp
	corps []string // the hub's corps; nil: only the first

	mu    sync.RWMutex
	ready chan struct{}
	books map[string]*book // by corp, "" the first
}

// StoreOption changes NewStore's defaults.
type StoreOption func(*Store)

// WithCorps names the hub's corps, the first corp first (wecom.Config.CorpIDs):
// reads may then name any of them by id. Without it only the first corp is
// read, as "".
func WithCorps(ids ...string) StoreOption {
	return func(s *Store) {
		if len(ids) > 0 {
			s.first, s.corps = ids[0], slices.Clone(ids)
		}
	}
}

// NewStore returns a store on the wxhub_directory bucket; Start fills it.
func NewStore(kv jetstream.KeyValue, log *zap.Logger, opts ...StoreOption) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{kv: kv, log: log.Named("directory"), ready: make(chan struct{}), books: map[string]*book{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Start follows the bucket until ctx ends; it returns once the current
// content is loaded. A watch the server closes (a reconnect) is opened again,
// and entries deleted meanwhile are dropped when its initial values are in.
func (s *Store) Start(ctx context.Context) error {
	w, err := s.kv.WatchFiltered(ctx, bus.DirKeyFilters())
	if err != nil {
		return fmt.Errorf("directory: watch: %w", err)
	}
	loaded := make(chan struct{})
	go s.follow(ctx, w, loaded)
	select {
	case <-loaded:
		close(s.ready)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) follow(ctx context.Context, w jetstream.KeyWatcher, loaded chan struct{}) {
	for {
		seen := map[string]bool{} // keys of this watch's initial values
		initial := true
	updates:
		for {
			select {
			case <-ctx.Done():
				_ = w.Stop()
				return
			case e, ok := <-w.Updates():
				if !ok {
					break updates
				}
				if e == nil { // end of the initial values
					if initial {
						initial = false
						s.prune(seen)
						if loaded != nil {
							close(loaded)
							loaded = nil
						}
					}
					continue
				}
				if initial {
					seen[e.Key()] = true
				}
				s.apply(e)
			}
		}
		s.log.Warn("directory watch closed; watching again")
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			var err error
			if w, err = s.kv.WatchFiltered(ctx, bus.DirKeyFilters()); err == nil {
				break
			}
			s.log.Warn("directory watch failed", zap.Error(err))
		}
	}
}

// prune drops entries whose keys a fresh watch did not list (deleted while
// no watch was open).
func (s *Store) prune(seen map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for corp, b := range s.books {
		p := bus.DirPrefix(corp)
		for id := range b.users {
			if !seen[bus.DirUserKey(p, id)] {
				delete(b.users, id)
			}
		}
		for id := range b.depts {
			if !seen[bus.DirDeptKey(p, id)] {
				delete(b.depts, id)
			}
		}
		for id := range b.tags {
			if !seen[bus.DirTagKey(p, id)] {
				delete(b.tags, id)
			}
		}
	}
}

func (s *Store) apply(e jetstream.KeyValueEntry) {
	corp, kind, id, ok := bus.ParseDirKey(e.Key())
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.books[corp]
	if b == nil {
		b = newBook()
		s.books[corp] = b
	}
	del := e.Operation() != jetstream.KeyValuePut
	n, _ := strconv.ParseInt(id, 10, 64)
	switch kind {
	case "user":
		var u schemas.DirUser
		if del {
			delete(b.users, id)
		} else if json.Unmarshal(e.Value(), &u) == nil {
			b.users[u.UserID] = u
		}
	case "dept":
		var d schemas.DirDepartment
		if del {
			delete(b.depts, n)
		} else if json.Unmarshal(e.Value(), &d) == nil {
			b.depts[d.ID] = d
		}
	case "tag":
		var t schemas.DirTag
		if del {
			delete(b.tags, n)
		} else if json.Unmarshal(e.Value(), &t) == nil {
			b.tags[t.ID] = t
		}
	}
}

// read waits for the first load and runs f on corp's directory under the
// read lock ("" or the first corp's id: the first corp's; ErrUnknownCorp for
// a corp the hub does not serve).
func (s *Store) read(ctx context.Context, corp string, f func(b *book) error) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return fmt.Errorf("directory: not loaded yet: %w", ctx.Err())
	}
	if corp == s.first {
		corp = ""
	} else if !slices.Contains(s.corps, corp) && corp != "" {
		return fmt.Errorf("%w: %q", ErrUnknownCorp, corp)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.books[corp]
	if b == nil {
		b = newBook() // nothing synced yet
	}
	return f(b)
}

// User returns one member of corp (ErrNotFound).
func (s *Store) User(ctx context.Context, corp, id string) (u schemas.DirUser, err error) {
	err = s.read(ctx, corp, func(b *book) error {
		var ok bool
		if u, ok = b.users[id]; !ok {
			return fmt.Errorf("%w: user %q", ErrNotFound, id)
		}
		return nil
	})
	return u, err
}

// Department returns one department of corp (ErrNotFound).
func (s *Store) Department(ctx context.Context, corp string, id int64) (d schemas.DirDepartment, err error) {
	err = s.read(ctx, corp, func(b *book) error {
		var ok bool
		if d, ok = b.depts[id]; !ok {
			return fmt.Errorf("%w: department %d", ErrNotFound, id)
		}
		return nil
	})
	return d, err
}

// Tag returns one tag of corp (ErrNotFound).
func (s *Store) Tag(ctx context.Context, corp string, id int64) (t schemas.DirTag, err error) {
	err = s.read(ctx, corp, func(b *book) error {
		var ok bool
		if t, ok = b.tags[id]; !ok {
			return fmt.Errorf("%w: tag %d", ErrNotFound, id)
		}
		return nil
	})
	return t, err
}

// subtree is dept and, when recursive, every department below it.
func (b *book) subtree(dept int64, recursive bool) []int64 {
	out := []int64{dept}
	for i := 0; recursive && i < len(out); i++ {
		for _, d := range b.depts {
			if d.ParentID == out[i] && d.ID != out[i] && !slices.Contains(out, d.ID) {
				out = append(out, d.ID)
			}
		}
	}
	return out
}

func (b *book) members(depts []int64) []schemas.DirUser {
	var out []schemas.DirUser
	for _, u := range b.users {
		for _, d := range u.Departments {
			if slices.Contains(depts, d) {
				out = append(out, u)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b schemas.DirUser) int { return strings.Compare(a.UserID, b.UserID) })
	return out
}

// DepartmentMembers returns the members of corp's dept, and with recursive
// those of every department below it, sorted by userid (ErrNotFound for an
// unknown dept).
func (s *Store) DepartmentMembers(ctx context.Context, corp string, dept int64, recursive bool) (us []schemas.DirUser, err error) {
	err = s.read(ctx, corp, func(b *book) error {
		if _, ok := b.depts[dept]; !ok {
			return fmt.Errorf("%w: department %d", ErrNotFound, dept)
		}
		us = b.members(b.subtree(dept, recursive))
		return nil
	})
	return us, err
}

// TagMembers returns the members of corp's tag: those tagged directly and
// every member of its departments (with their subtrees, as WeCom delivers a
// tag send).
func (s *Store) TagMembers(ctx context.Context, corp string, tag int64) (us []schemas.DirUser, err error) {
	err = s.read(ctx, corp, func(b *book) error {
		us, err = b.tagMembers(tag)
		return err
	})
	return us, err
}

func (b *book) tagMembers(tag int64) ([]schemas.DirUser, error) {
	t, ok := b.tags[tag]
	if !ok {
		return nil, fmt.Errorf("%w: tag %d", ErrNotFound, tag)
	}
	var depts []int64
	for _, d := range t.Parties {
		depts = append(depts, b.subtree(d, true)...)
	}
	out := b.members(depts)
	for _, id := range t.Users {
		if u, ok := b.users[id]; ok && !slices.ContainsFunc(out, func(x schemas.DirUser) bool { return x.UserID == id }) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b schemas.DirUser) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// Expand turns a send's toparty and totag ("2|3", "1") into the member
// userids they reach in corp's directory (departments with their subtrees,
// as WeCom sends), in a stable order without repeats, so that per-member
// limits and quiet hours can apply to each. unknown lists the parties
// ("party:<id>") and tags ("tag:<id>") the directory does not know; the
// caller decides whether that fails the send.
func (s *Store) Expand(ctx context.Context, corp, toparty, totag string) (users, unknown []string, err error) {
	err = s.read(ctx, corp, func(b *book) error {
		seen := map[string]bool{}
		add := func(us []schemas.DirUser) {
			for _, u := range us {
				if !seen[u.UserID] {
					seen[u.UserID] = true
					users = append(users, u.UserID)
				}
			}
		}
		for _, p := range splitIDs(toparty) {
			id, err := strconv.ParseInt(p, 10, 64)
			if _, ok := b.depts[id]; err != nil || !ok {
				unknown = append(unknown, "party:"+p)
				continue
			}
			add(b.members(b.subtree(id, true)))
		}
		for _, t := range splitIDs(totag) {
			id, err := strconv.ParseInt(t, 10, 64)
			var us []schemas.DirUser
			if err == nil {
				us, err = b.tagMembers(id)
			}
			if err != nil {
				unknown = append(unknown, "tag:"+t)
				continue
			}
			add(us)
		}
		return nil
	})
	return users, unknown, err
}

func splitIDs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "|") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Claims are the OIDC userinfo claims of a member of corp (scope profile):
// name, department ids, position, employee number. The hub passes it, bound
// to the OIDC app's corp, to the OIDC provider as Deps.Claims.
func (s *Store) Claims(ctx context.Context, corp, user string) (map[string]any, error) {
	u, err := s.User(ctx, corp, user)
	if err != nil {
		return nil, err
	}
	c := map[string]any{"name": u.Name, "department": u.Departments}
	if u.Position != "" {
		c["position"] = u.Position
	}
	if u.EmployeeNo != "" {
		c["employee_no"] = u.EmployeeNo
	}
	return c, nil
}
