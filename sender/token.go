package sender

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
)

// ErrBadSecret reports that gettoken refused the app's secret (40001 and other
// permanent answers). Nobody asks again before the cooldown ends, because WeCom
// blocks an IP that keeps trying.
var ErrBadSecret = errors.New("sender: gettoken refused the app secret")

// Token timing.
const (
	tokenEarly     = 5 * time.Minute  // refresh this long before expires_in runs out
	tokenLease     = 30 * time.Second // a refresher's exclusive right to call gettoken
	badSecretPause = 5 * time.Minute  // no gettoken for an app after a refused secret
)

// tokenRecord is an app's value in wxhub_tokens (bus.TokenRecord).
type tokenRecord = bus.TokenRecord

// getTokenFunc is wecom.Client.GetToken or wecom.MPClient.GetToken.
type getTokenFunc func(ctx context.Context, corpID, secret string) (string, time.Duration, error)

// tokens hands out access tokens, one per app, shared by every replica through
// the wxhub_tokens bucket. When a token is missing, expiring or reported invalid,
// exactly one replica wins a compare-and-set lease on the key and calls
// gettoken; the others poll the key until the new token appears. So an expired
// token costs one gettoken per app, not one per message or per replica.
type tokens struct {
	kv       jetstream.KeyValue
	corpID   string
	get      getTokenFunc     // WeCom's gettoken
	getMP    getTokenFunc     // the Official Account's /cgi-bin/token (appid, AppSecret); nil without accounts
	badCreds func(error) bool // gettoken answer that must not be retried soon
	clock    Clock
	log      *zap.Logger
	id       string                      // this replica, for the lease
	onFetch  func(app string, err error) // after each gettoken call (metrics); may be nil

	mu      sync.Mutex
	local   map[string]tokenRecord // by app name
	refresh map[string]*sync.Mutex // one caller per app and replica on the slow path
}

func newTokens(kv jetstream.KeyValue, corpID string, get getTokenFunc, badCreds func(error) bool, clock Clock, log *zap.Logger) *tokens {
	return &tokens{kv: kv, corpID: corpID, get: get, badCreds: badCreds, clock: clock, log: log, id: nuid.Next(), local: map[string]tokenRecord{}, refresh: map[string]*sync.Mutex{}}
}

func (t *tokens) key(app App) string {
	if app.mp() {
		return bus.MPTokenKey(app.AppID)
	}
	return bus.TokenKey(cmp.Or(app.CorpID, t.corpID), app.AgentID)
}

// Token returns a valid token for app, refreshing it if needed (see tokens).
func (t *tokens) Token(ctx context.Context, app App) (string, error) {
	t.mu.Lock()
	r, ok := t.local[app.Name]
	slow := t.refresh[app.Name]
	if slow == nil {
		slow = &sync.Mutex{}
		t.refresh[app.Name] = slow
	}
	t.mu.Unlock()
	if ok && r.Valid(t.clock.Now(), tokenEarly) {
		return r.Token, nil
	}
	// Goroutines of this replica queue here; the KV lease orders the replicas.
	slow.Lock()
	defer slow.Unlock()
	key := t.key(app)
	waitUntil := time.Now().Add(tokenLease) // wall-clock cap on waiting for another replica
	for {
		now := t.clock.Now()
		e, err := t.kv.Get(ctx, key)
		var rec tokenRecord
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return "", fmt.Errorf("sender: token %s: %w", app.Name, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				rec = tokenRecord{} // unreadable: refresh over it
			}
		}
		switch {
		case rec.Valid(now, tokenEarly):
			t.remember(app, rec)
			return rec.Token, nil
		case rec.Error != "" && now.Before(rec.ErrorUntil):
			return "", fmt.Errorf("%w: app %s: %s (no retry before %s)", ErrBadSecret, app.Name, rec.Error, rec.ErrorUntil.Format(time.RFC3339))
		case rec.RefreshBy != "" && rec.RefreshBy != t.id && now.Before(rec.RefreshUntil) && time.Now().Before(waitUntil):
			// Another replica is refreshing: wait for its answer.
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		// Take the lease; losing the race means someone else refreshes.
		lease := rec
		lease.RefreshBy, lease.RefreshUntil = t.id, now.Add(tokenLease)
		lease.Error, lease.ErrorUntil = "", time.Time{}
		data, _ := json.Marshal(lease)
		if rev == 0 {
			rev, err = t.kv.Create(ctx, key, data)
		} else {
			rev, err = t.kv.Update(ctx, key, data, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("sender: token %s lease: %w", app.Name, err)
		}
		return t.fetch(ctx, app, key, rev)
	}
}

func (t *tokens) fetch(ctx context.Context, app App, key string, rev uint64) (string, error) {
	get, id := t.get, cmp.Or(app.CorpID, t.corpID) // each corp's apps by its own corp id
	if app.mp() {
		get, id = t.getMP, app.AppID
	}
	var (
		tok       string
		expiresIn time.Duration
		gerr      error
	)
	if get == nil {
		gerr = fmt.Errorf("sender: no Official Account client for %s", app.Name)
	} else {
		tok, expiresIn, gerr = get(ctx, id, app.Secret)
	}
	if t.onFetch != nil {
		t.onFetch(app.Name, gerr) // logs 60020 (IP not trusted) in plain words
	}
	now := t.clock.Now()
	var rec tokenRecord
	switch {
	case gerr == nil:
		rec = tokenRecord{Token: tok, ExpiresAt: now.Add(expiresIn)}
		t.log.Info("access token refreshed", zap.String("app", app.Name), zap.Duration("expires_in", expiresIn))
	case t.badCreds != nil && t.badCreds(gerr):
		rec = tokenRecord{Error: gerr.Error(), ErrorUntil: now.Add(badSecretPause)}
		t.log.Error("gettoken refused; check the app's secret, the corp id (Official Account: the appid) and the trusted IPs / IP whitelist; pausing gettoken",
			zap.String("app", app.Name), zap.Duration("pause", badSecretPause), zap.Error(gerr))
	default:
		rec = tokenRecord{} // release the lease: the next caller tries again after its own backoff
	}
	data, _ := json.Marshal(rec)
	if _, err := t.kv.Update(ctx, key, data, rev); err != nil {
		// Lost the key to a lease-taker after our lease ran out: the token we got is
		// still valid for us, the shared copy is theirs to write.
		t.log.Warn("token store update lost", zap.String("app", app.Name), zap.Error(err))
	}
	if gerr != nil {
		if t.badCreds != nil && t.badCreds(gerr) {
			return "", fmt.Errorf("%w: app %s: %w", ErrBadSecret, app.Name, gerr)
		}
		return "", fmt.Errorf("sender: gettoken %s: %w", app.Name, gerr)
	}
	t.remember(app, rec)
	return tok, nil
}

func (t *tokens) remember(app App, rec tokenRecord) {
	t.mu.Lock()
	t.local[app.Name] = rec
	t.mu.Unlock()
}

// Invalidate marks token as rejected by WeCom (40014/42001). Only the first
// replica to report a given token flips it to stale; the others find a newer
// token (or the stale mark) and do not cause a second gettoken.
func (t *tokens) Invalidate(ctx context.Context, app App, token string) error {
	t.mu.Lock()
	if r, ok := t.local[app.Name]; ok && r.Token == token {
		delete(t.local, app.Name)
	}
	t.mu.Unlock()
	key := t.key(app)
	for range 10 {
		e, err := t.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sender: invalidate token %s: %w", app.Name, err)
		}
		var rec tokenRecord
		if json.Unmarshal(e.Value(), &rec) != nil || rec.Token != token || rec.Stale {
			return nil
		}
		rec.Stale = true
		data, _ := json.Marshal(rec)
		if _, err := t.kv.Update(ctx, key, data, e.Revision()); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return fmt.Errorf("sender: invalidate token %s: %w", app.Name, err)
		}
		return nil
	}
	return nil
}
