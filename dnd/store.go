package dnd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
)

// Setting is a member's stored choice. Off means "no quiet hours", which
// overrides the company default; a member with no Setting gets the default.
type Setting struct {
	Window    Window    `json:"window"`
	Off       bool      `json:"off,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Effective is the window that applies given the member's setting (found or not)
// and the company default (nil: none). ok is false when no quiet hours apply.
func Effective(s Setting, found bool, def *Window) (Window, bool) {
	switch {
	case found && s.Off:
		return Window{}, false
	case found && s.Window.Valid():
		return s.Window, true
	case def != nil && def.Valid():
		return *def, true
	}
	return Window{}, false
}

// Store keeps Settings in a KV bucket (wxhub_dnd), one key per member. Safe for
// concurrent use; every call is one KV operation.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore wraps the bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Get returns the member's setting; found is false when the member never set one.
func (s *Store) Get(ctx context.Context, user string) (Setting, bool, error) {
	e, err := s.kv.Get(ctx, Key(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Setting{}, false, nil
	}
	if err != nil {
		return Setting{}, false, fmt.Errorf("dnd: get %s: %w", user, err)
	}
	var st Setting
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Setting{}, false, fmt.Errorf("dnd: decode %s: %w", user, err)
	}
	return st, true, nil
}

// Set stores quiet hours w for the member.
func (s *Store) Set(ctx context.Context, user string, w Window, now time.Time) error {
	if !w.Valid() {
		return fmt.Errorf("%w: %v", ErrWindow, w)
	}
	return s.put(ctx, user, Setting{Window: w, UpdatedAt: now})
}

// Clear turns quiet hours off for the member, company default included.
func (s *Store) Clear(ctx context.Context, user string, now time.Time) error {
	return s.put(ctx, user, Setting{Off: true, UpdatedAt: now})
}

// Reset forgets the member's choice: the company default applies again.
func (s *Store) Reset(ctx context.Context, user string) error {
	if err := s.kv.Delete(ctx, Key(user)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("dnd: reset %s: %w", user, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, user string, st Setting) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("dnd: encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, Key(user), data); err != nil {
		return fmt.Errorf("dnd: put %s: %w", user, err)
	}
	return nil
}

// Key is the KV key of a member (bus.SafeKey).
func Key(user string) string { return bus.SafeKey(user) }
