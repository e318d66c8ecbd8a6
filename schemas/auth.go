package schemas

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Scan-to-login challenge states, kept in the wxhub_auth KV bucket under the
// challenge id. The gateway creates a challenge (pending) and hands out its
// assertion (consumed); the scanlogin connector binds the scanning user
// (scanned, then confirmed or denied on the card). Expired is never stored: it
// is what a reader reports once ExpiresAt has passed.
const (
	AuthPending   = "pending"   // created, not scanned yet
	AuthScanned   = "scanned"   // bound to User, waiting for the confirm card's answer
	AuthConfirmed = "confirmed" // the user confirmed; the assertion can be fetched once
	AuthDenied    = "denied"    // the user pressed 取消
	AuthConsumed  = "consumed"  // the assertion was handed out; never again
	AuthExpired   = "expired"   // ExpiresAt passed before it was consumed
)

// Login methods, the assertion's "amr".
const (
	AuthMethodScan  = "wecom_scan"  // scancode_waitmsg in the WeCom app
	AuthMethodOAuth = "wecom_oauth" // WeCom OAuth2 / web login code
)

// AuthQRPrefix starts the text of a login QR code: "wxhub-login:<id>". It is what
// WeCom's scancode_waitmsg event carries as ScanResult.
const AuthQRPrefix = "wxhub-login:"

// AuthTaskPrefix starts the task_id of a login confirmation card:
// "wxhub-login-<id>" (WeCom task ids allow letters, digits, '_', '-', '@').
const AuthTaskPrefix = "wxhub-login-"

// AuthChallenge is one scan-to-login or OAuth login attempt. Writers update it
// with the KV revision they read, so the first scan (or click) wins.
type AuthChallenge struct {
	ID     string `json:"id"`
	App    string `json:"app"`    // the WeCom app whose members may log in
	Client string `json:"client"` // the relying system: the assertion's audience
	// ClientTitle is shown to the user on the confirm card ("ERP 系统").
	ClientTitle string `json:"client_title,omitempty"`
	// Key is the API key name that created it; only that key may read it.
	Key string `json:"key"`
	// Return is where the OAuth callback sends the browser (checked against the
	// client's redirect_urls at creation).
	Return      string     `json:"return,omitempty"`
	Status      string     `json:"status"`
	User        string     `json:"user,omitempty"`
	Method      string     `json:"method,omitempty"`   // AuthMethodScan or AuthMethodOAuth once bound
	BoundBy     string     `json:"bound_by,omitempty"` // the event id that bound it (redeliveries are no-ops)
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	ScannedAt   *time.Time `json:"scanned_at,omitempty"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	ConsumedAt  *time.Time `json:"consumed_at,omitempty"`
}

// Expired reports whether the challenge can no longer be scanned or confirmed at now.
func (c AuthChallenge) Expired(now time.Time) bool { return !now.Before(c.ExpiresAt) }

// AuthFetchGrace is how long after ExpiresAt a confirmed challenge can still be
// redeemed, so a page polling every few seconds gets a confirmation made just
// before the end.
const AuthFetchGrace = 30 * time.Second

// NewAuthChallenge returns a pending challenge with a fresh random id (32 hex
// digits, a valid KV key) that can be scanned until now+ttl. The caller stores
// it with a KV Create under its ID.
func NewAuthChallenge(app, client, clientTitle, key string, now time.Time, ttl time.Duration) AuthChallenge {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	if clientTitle == "" {
		clientTitle = client
	}
	now = now.UTC()
	return AuthChallenge{
		ID: hex.EncodeToString(b), App: app, Client: client, ClientTitle: clientTitle, Key: key,
		Status: AuthPending, CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
}

// ValidAuthChallengeID reports whether id has the form NewAuthChallenge gives:
// anything else cannot be a stored challenge (and may not be a valid KV key).
func ValidAuthChallengeID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Reported is the status a reader reports at now: Status, except AuthExpired
// for a pending or scanned challenge past ExpiresAt and for a confirmed one
// not redeemed within AuthFetchGrace after it.
func (c AuthChallenge) Reported(now time.Time) string {
	switch c.Status {
	case AuthPending, AuthScanned:
		if c.Expired(now) {
			return AuthExpired
		}
	case AuthConfirmed:
		if !now.Before(c.ExpiresAt.Add(AuthFetchGrace)) {
			return AuthExpired
		}
	}
	return c.Status
}

// AssertionClaims are the payload of a scan-to-login assertion, a JWT the hub
// signs with EdDSA (gateway) and a legacy web app verifies (connectors/scanlogin):
// docs/identity.md.
type AssertionClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"` // the WeCom userid
	Audience  string   `json:"aud"` // the client
	Corp      string   `json:"corp"`
	App       string   `json:"app"`
	Challenge string   `json:"cid"`
	Methods   []string `json:"amr"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	ID        string   `json:"jti"`
}
