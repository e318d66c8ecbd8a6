package oidc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
)

// keyRing is the provider's view of wxhub_oidc_keys, re-read at most every
// keyCacheTTL (a key is published KeyPropagation before it signs, longer than
// that, so every replica shows it in time).
type keyRing struct {
	kv  jetstream.KeyValue
	cfg Config
	now func() time.Time
	log *zap.Logger

	mu     sync.Mutex
	keys   []ringKey // by ActivateAt
	loaded time.Time
}

type ringKey struct {
	rec  schemas.OIDCKey
	priv jose.JSONWebKey
}

const (
	keyCacheTTL = 10 * time.Second
	// rotationLock is the record whose revision two replicas race on to rotate.
	rotationLock = "rotation"
)

func (r *keyRing) load(ctx context.Context, force bool) ([]ringKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !force && r.keys != nil && now.Sub(r.loaded) < keyCacheTTL && !now.Before(r.loaded) {
		return r.keys, nil
	}
	lister, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: list keys: %w", err)
	}
	var keys []ringKey
	for k := range lister.Keys() {
		if k == rotationLock {
			continue
		}
		e, err := r.kv.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		var rec schemas.OIDCKey
		var jwk jose.JSONWebKey
		if json.Unmarshal(e.Value(), &rec) != nil || jwk.UnmarshalJSON(rec.JWK) != nil || jwk.IsPublic() {
			r.log.Warn("unreadable signing key ignored", zap.String("key", k))
			continue
		}
		keys = append(keys, ringKey{rec: rec, priv: jwk})
	}
	slices.SortFunc(keys, func(a, b ringKey) int { return a.rec.ActivateAt.Compare(b.rec.ActivateAt) })
	r.keys, r.loaded = keys, now
	return keys, nil
}

// retireAt is when key i leaves the JWKS: the next key has been active for
// the longest token lifetime (plus a minute of clock skew).
func (r *keyRing) retireAt(keys []ringKey, i int) (time.Time, bool) {
	if i+1 >= len(keys) {
		return time.Time{}, false
	}
	return keys[i+1].rec.ActivateAt.Add(r.cfg.IDTokenTTL + time.Minute), true
}

// signer returns the newest active key.
func (r *keyRing) signer(ctx context.Context) (ringKey, error) {
	keys, err := r.load(ctx, false)
	if err != nil {
		return ringKey{}, err
	}
	now := r.now()
	for i := len(keys) - 1; i >= 0; i-- {
		if !now.Before(keys[i].rec.ActivateAt) {
			return keys[i], nil
		}
	}
	return ringKey{}, errors.New("oidc: no active signing key (Provider.Run or EnsureKey creates one)")
}

// public is the JWKS: every key not yet retired, including those not active yet.
func (r *keyRing) public(ctx context.Context) (jose.JSONWebKeySet, error) {
	keys, err := r.load(ctx, false)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	now := r.now()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for i, k := range keys {
		if at, ok := r.retireAt(keys, i); ok && !now.Before(at) {
			continue
		}
		set.Keys = append(set.Keys, k.priv.Public())
	}
	return set, nil
}

// newKey makes an RSA key published now and signing from activate on.
func (r *keyRing) newKey(activate time.Time) (schemas.OIDCKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return schemas.OIDCKey{}, err
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(jose.RS256), Use: "sig"}
	pub := jwk.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return schemas.OIDCKey{}, err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return schemas.OIDCKey{}, err
	}
	return schemas.OIDCKey{KID: jwk.KeyID, Alg: string(jose.RS256), JWK: raw, CreatedAt: r.now().UTC(), ActivateAt: activate.UTC()}, nil
}

// rotate adds a key if the newest is older than every (0: always; < 0: only
// when there is none), under the
// rotation lock so that of several replicas one adds it. first keys are
// active at once; later ones after KeyPropagation. It reports whether it added one.
func (r *keyRing) rotate(ctx context.Context, every time.Duration) (bool, error) {
	keys, err := r.load(ctx, true)
	if err != nil {
		return false, err
	}
	now := r.now()
	if n := len(keys); n > 0 && (every < 0 || (every > 0 && now.Sub(keys[n-1].rec.CreatedAt) < every)) {
		return false, nil // every < 0: only the first key
	}
	// Take the lock: a CAS on its revision; whoever loses re-reads next time.
	e, err := r.kv.Get(ctx, rotationLock)
	stamp, _ := json.Marshal(map[string]time.Time{"at": now.UTC()})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		_, err = r.kv.Create(ctx, rotationLock, stamp)
	case err == nil:
		var last struct {
			At time.Time `json:"at"`
		}
		_ = json.Unmarshal(e.Value(), &last)
		switch {
		case every > 0 && now.Sub(last.At) < every/2:
			return false, nil // another replica rotated since we listed the keys
		case every < 0 && now.Sub(last.At) < 10*time.Second:
			return false, nil // another replica is making the first key (taken over after 10 s)
		}
		_, err = r.kv.Update(ctx, rotationLock, stamp, e.Revision())
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("oidc: rotation lock: %w", err)
	}
	activate := now
	if len(keys) > 0 {
		activate = now.Add(r.cfg.KeyPropagation)
	}
	rec, err := r.newKey(activate)
	if err != nil {
		return false, fmt.Errorf("oidc: new key: %w", err)
	}
	data, _ := json.Marshal(rec)
	if _, err := r.kv.Create(ctx, "key."+rec.KID, data); err != nil {
		return false, fmt.Errorf("oidc: store key: %w", err)
	}
	r.log.Info("signing key added", zap.String("kid", rec.KID), zap.Time("activate_at", rec.ActivateAt))
	// Forget retired keys.
	for i, k := range keys {
		if at, ok := r.retireAt(append(keys, ringKey{rec: rec}), i); ok && !now.Before(at) {
			if err := r.kv.Delete(ctx, "key."+k.rec.KID); err == nil {
				r.log.Info("signing key retired", zap.String("kid", k.rec.KID))
			}
		}
	}
	_, err = r.load(ctx, true)
	return true, err
}
