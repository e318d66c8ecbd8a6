package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrSession reports a session cookie that is missing, forged, expired or
// belongs to a user whose token has changed since.
var ErrSession = errors.New("dashboard: invalid session")

// sessionCookie is the cookie's name. The __Host- prefix would require Secure,
// which a plain-HTTP demo on 127.0.0.1 cannot have.
const sessionCookie = "wxhub_dash"

// session is the signed content of the cookie. Sessions are stateless: the
// server keeps nothing, so logging out clears the cookie and the TTL bounds a
// stolen one. Changing a user's token invalidates their sessions (TokenTag).
type session struct {
	User     string `json:"u"`
	Role     string `json:"r"`
	Expires  int64  `json:"e"` // Unix seconds
	Nonce    string `json:"n"` // random; the CSRF token is derived from it
	TokenTag string `json:"t"` // first bytes of HMAC(key, user token)
}

type sessions struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

func newSessions(key string, ttl time.Duration, now func() time.Time) *sessions {
	k := []byte(key)
	if len(k) == 0 {
		k = make([]byte, 32)
		_, _ = rand.Read(k)
	}
	return &sessions{key: k, ttl: ttl, now: now}
}

func (s *sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

func (s *sessions) tokenTag(token string) string {
	return hex.EncodeToString(s.mac("token", token)[:8])
}

// issue makes the cookie value for u.
func (s *sessions) issue(u User) (string, session) {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	ss := session{
		User:     u.Name,
		Role:     u.Role,
		Expires:  s.now().Add(s.ttl).Unix(),
		Nonce:    hex.EncodeToString(nonce),
		TokenTag: s.tokenTag(u.Token),
	}
	payload, _ := json.Marshal(ss)
	p := base64.RawURLEncoding.EncodeToString(payload)
	sig := base64.RawURLEncoding.EncodeToString(s.mac("session", p))
	return p + "." + sig, ss
}

// verify checks the signature, the expiry and that the user still exists with
// the same token and role.
func (s *sessions) verify(value string, users map[string]User) (session, error) {
	p, sig, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, fmt.Errorf("%w: malformed", ErrSession)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", p)) {
		return session{}, fmt.Errorf("%w: bad signature", ErrSession)
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return session{}, fmt.Errorf("%w: payload: %w", ErrSession, err)
	}
	var ss session
	if err := json.Unmarshal(raw, &ss); err != nil {
		return session{}, fmt.Errorf("%w: payload: %w", ErrSession, err)
	}
	if s.now().Unix() >= ss.Expires {
		return session{}, fmt.Errorf("%w: expired", ErrSession)
	}
	u, ok := users[ss.User]
	if !ok || u.Role != ss.Role || subtle.ConstantTimeCompare([]byte(s.tokenTag(u.Token)), []byte(ss.TokenTag)) != 1 {
		return session{}, fmt.Errorf("%w: user %q changed", ErrSession, ss.User)
	}
	return ss, nil
}

// csrf is the token a POST must carry in X-CSRF-Token: bound to the session,
// unknowable to another site (it never leaves the page except in that header).
func (s *sessions) csrf(ss session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", ss.Nonce)[:18])
}

func (s *sessions) checkCSRF(ss session, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.csrf(ss)))
}

// findUser returns the user whose token is token, comparing every user's token
// in constant time so the answer's timing says nothing about which matched.
func findUser(users []User, token string) (User, bool) {
	var found User
	ok := 0
	th := sha256.Sum256([]byte(token))
	for _, u := range users {
		uh := sha256.Sum256([]byte(u.Token))
		if subtle.ConstantTimeCompare(th[:], uh[:]) == 1 {
			found, ok = u, 1
		}
	}
	return found, ok == 1 && token != ""
}
