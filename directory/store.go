// Package directory is the hub's cached copy of the WeCom address book:
// departments, members (departments, position, leader flags, direct leaders,
// employee number, tags) and tags, kept in the wxhub_directory bucket. The
// Syncer fills it by a full sync at start and on a schedule, and refreshes
// single entries on the requests the directorysync connector writes when WeCom
// reports a change_contact. The Store is a live in-memory mirror of the bucket
// for reads (User, DepartmentMembers, TagMembers, Expand); Handler serves the
// read API. See docs/identity.md.
package directory

import (
	"context"
	"encoding/base64"
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

	"github.com/wxhub/wxhub/schemas"
)

// ErrNotFound: no such user, department or tag in the directory.
var ErrNotFound = errors.New("directory: not found")

// Store mirrors the wxhub_directory bucket in memory through a KV watch, so
// every replica answers from the same data, a change in one replica's sync is
// seen by all, and reads cost no round trip. Safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	log *zap.Logger

	mu    sync.RWMutex
	ready chan struct{}
	users map[string]schemas.DirUser
	depts map[int64]schemas.DirDepartment
	tags  map[int64]schemas.DirTag
}

// NewStore returns a store on the wxhub_directory bucket; Start fills it.
func NewStore(kv jetstream.KeyValue, log *zap.Logger) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{kv: kv, log: log.Named("directory"), ready: make(chan struct{}),
		users: map[string]schemas.DirUser{}, depts: map[int64]schemas.DirDepartment{}, tags: map[int64]schemas.DirTag{}}
}

// Start follows the bucket until ctx ends; it returns once the current
// content is loaded. A watch the server closes (a reconnect) is opened again,
// and entries deleted meanwhile are dropped when its initial values are in.
func (s *Store) Start(ctx context.Context) error {
	w, err := s.kv.WatchFiltered(ctx, []string{"user.>", "dept.>", "tag.>"})
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
			if w, err = s.kv.WatchFiltered(ctx, []string{"user.>", "dept.>", "tag.>"}); err == nil {
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
	for id := range s.users {
		if !seen["user."+base64.RawURLEncoding.EncodeToString([]byte(id))] {
			delete(s.users, id)
		}
	}
	for id := range s.depts {
		if !seen["dept."+strconv.FormatInt(id, 10)] {
			delete(s.depts, id)
		}
	}
	for id := range s.tags {
		if !seen["tag."+strconv.FormatInt(id, 10)] {
			delete(s.tags, id)
		}
	}
}

func (s *Store) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	del := e.Operation() != jetstream.KeyValuePut
	key := e.Key()
	switch {
	case strings.HasPrefix(key, "user."):
		var u schemas.DirUser
		if del {
			if id, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, "user.")); err == nil {
				delete(s.users, string(id))
			}
			return
		}
		if json.Unmarshal(e.Value(), &u) == nil {
			s.users[u.UserID] = u
		}
	case strings.HasPrefix(key, "dept."):
		id, _ := strconv.ParseInt(strings.TrimPrefix(key, "dept."), 10, 64)
		var d schemas.DirDepartment
		if del {
			delete(s.depts, id)
		} else if json.Unmarshal(e.Value(), &d) == nil {
			s.depts[d.ID] = d
		}
	case strings.HasPrefix(key, "tag."):
		id, _ := strconv.ParseInt(strings.TrimPrefix(key, "tag."), 10, 64)
		var t schemas.DirTag
		if del {
			delete(s.tags, id)
		} else if json.Unmarshal(e.Value(), &t) == nil {
			s.tags[t.ID] = t
		}
	}
}

func (s *Store) wait(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("directory: not loaded yet: %w", ctx.Err())
	}
}

// User returns one member (ErrNotFound).
func (s *Store) User(ctx context.Context, id string) (schemas.DirUser, error) {
	if err := s.wait(ctx); err != nil {
		return schemas.DirUser{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[id]
	if !ok {
		return u, fmt.Errorf("%w: user %q", ErrNotFound, id)
	}
	return u, nil
}

// Department returns one department (ErrNotFound).
func (s *Store) Department(ctx context.Context, id int64) (schemas.DirDepartment, error) {
	if err := s.wait(ctx); err != nil {
		return schemas.DirDepartment{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.depts[id]
	if !ok {
		return d, fmt.Errorf("%w: department %d", ErrNotFound, id)
	}
	return d, nil
}

// Tag returns one tag (ErrNotFound).
func (s *Store) Tag(ctx context.Context, id int64) (schemas.DirTag, error) {
	if err := s.wait(ctx); err != nil {
		return schemas.DirTag{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tags[id]
	if !ok {
		return t, fmt.Errorf("%w: tag %d", ErrNotFound, id)
	}
	return t, nil
}

// subtreeLocked is dept and, when recursive, every department below it.
func (s *Store) subtreeLocked(dept int64, recursive bool) []int64 {
	out := []int64{dept}
	for i := 0; recursive && i < len(out); i++ {
		for _, d := range s.depts {
			if d.ParentID == out[i] && d.ID != out[i] && !slices.Contains(out, d.ID) {
				out = append(out, d.ID)
			}
		}
	}
	return out
}

func (s *Store) membersLocked(depts []int64) []schemas.DirUser {
	var out []schemas.DirUser
	for _, u := range s.users {
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

// DepartmentMembers returns the members of dept, and with recursive those of
// every department below it, sorted by userid (ErrNotFound for an unknown dept).
func (s *Store) DepartmentMembers(ctx context.Context, dept int64, recursive bool) ([]schemas.DirUser, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.depts[dept]; !ok {
		return nil, fmt.Errorf("%w: department %d", ErrNotFound, dept)
	}
	return s.membersLocked(s.subtreeLocked(dept, recursive)), nil
}

// TagMembers returns the tag's members: those tagged directly and every member
// of its departments (with their subtrees, as WeCom delivers a tag send).
func (s *Store) TagMembers(ctx context.Context, tag int64) ([]schemas.DirUser, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tagMembersLocked(tag)
}

func (s *Store) tagMembersLocked(tag int64) ([]schemas.DirUser, error) {
	t, ok := s.tags[tag]
	if !ok {
		return nil, fmt.Errorf("%w: tag %d", ErrNotFound, tag)
	}
	var depts []int64
	for _, d := range t.Parties {
		depts = append(depts, s.subtreeLocked(d, true)...)
	}
	out := s.membersLocked(depts)
	for _, id := range t.Users {
		if u, ok := s.users[id]; ok && !slices.ContainsFunc(out, func(x schemas.DirUser) bool { return x.UserID == id }) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b schemas.DirUser) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// Expand turns a send's toparty and totag ("2|3", "1") into the member
// userids they reach (departments with their subtrees, as WeCom sends), in a
// stable order without repeats, so that per-member limits and quiet hours can
// apply to each. unknown lists the parties ("party:<id>") and tags
// ("tag:<id>") the directory does not know; the caller decides whether that
// fails the send.
func (s *Store) Expand(ctx context.Context, toparty, totag string) (users, unknown []string, err error) {
	if err := s.wait(ctx); err != nil {
		return nil, nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
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
		if _, ok := s.depts[id]; err != nil || !ok {
			unknown = append(unknown, "party:"+p)
			continue
		}
		add(s.membersLocked(s.subtreeLocked(id, true)))
	}
	for _, t := range splitIDs(totag) {
		id, err := strconv.ParseInt(t, 10, 64)
		var us []schemas.DirUser
		if err == nil {
			us, err = s.tagMembersLocked(id)
		}
		if err != nil {
			unknown = append(unknown, "tag:"+t)
			continue
		}
		add(us)
	}
	return users, unknown, nil
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

// Claims are the OIDC userinfo claims of a member (scope profile): name,
// department ids, position, employee number. The hub passes it to the OIDC
// provider as Deps.Claims.
func (s *Store) Claims(ctx context.Context, user string) (map[string]any, error) {
	u, err := s.User(ctx, user)
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
