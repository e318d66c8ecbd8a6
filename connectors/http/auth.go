package httpconn

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/connectors"
)

// Sign returns the HMAC signature header value the hmac auth sends:
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// tokenSource fetches and caches an OAuth2 client-credentials token. One
// fetch at a time: callers wait for it rather than each fetching its own.
type tokenSource struct {
	r               *resty.Client
	url, id, secret string
	scopes          []string
	params          bool
	now             func() time.Time
	mu              sync.Mutex
	token           string
	expiry          time.Time
	fetches         int
}

// errTokenRejected: the token endpoint refused the client (4xx): a wrong
// client id or secret is not fixed by retrying.
var errTokenRejected = errors.New("oauth2 token request rejected")

// get returns the cached token, or fetches one when there is none, it has
// expired, or it equals stale (the token a server just refused with 401).
func (s *tokenSource) get(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.token != stale && s.now().Before(s.expiry) {
		return s.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(s.scopes) > 0 {
		form.Set("scope", strings.Join(s.scopes, " "))
	}
	req := s.r.R().SetContext(ctx).SetHeader("Accept", "application/json")
	if s.params {
		form.Set("client_id", s.id)
		form.Set("client_secret", s.secret)
	} else {
		// RFC 6749 2.3.1: the id and secret are form-encoded before basic auth.
		req.SetBasicAuth(url.QueryEscape(s.id), url.QueryEscape(s.secret))
	}
	s.fetches++
	resp, err := req.SetFormDataFromValues(form).Post(s.url)
	if err != nil {
		return "", fmt.Errorf("oauth2 token: %w", err)
	}
	var tok struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
		Error       string      `json:"error"`
		Description string      `json:"error_description"`
	}
	_ = json.Unmarshal(resp.Body(), &tok)
	switch st := resp.StatusCode(); {
	case st >= 500 || st == 429 || st == 408:
		return "", fmt.Errorf("oauth2 token: HTTP %d", st)
	case st >= 400:
		return "", connectors.Permanent(fmt.Errorf("%w: HTTP %d %s %s", errTokenRejected, st, tok.Error, tok.Description))
	case tok.AccessToken == "":
		return "", fmt.Errorf("oauth2 token: HTTP %d without access_token", st)
	}
	life := time.Hour // RFC 6749 5.1: expires_in is recommended, not required
	if n, err := tok.ExpiresIn.Int64(); err == nil && n > 0 {
		life = time.Duration(n) * time.Second
	}
	// Renew a little early so that a token does not expire on its way.
	early := min(30*time.Second, life/10)
	s.token, s.expiry = tok.AccessToken, s.now().Add(life-early)
	return s.token, nil
}
