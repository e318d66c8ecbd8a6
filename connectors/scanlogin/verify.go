package scanlogin

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wxhub/wxhub/schemas"
)

// ErrAssertion is wrapped by every Verify failure.
var ErrAssertion = errors.New("scanlogin: invalid assertion")

// Claims are an assertion's payload (docs/identity.md), the type the hub signs.
type Claims = schemas.AssertionClaims

// KeySet is the JWK Set served at /api/v1/auth/keys.
type KeySet struct {
	Keys []struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
	} `json:"keys"`
}

// Verify checks an assertion the way a relying party must: EdDSA signature by
// a key of keys (matched by kid), issuer, audience, and the time window (with
// 5 s of clock skew). It does not remember jti: a relying party that must
// refuse a replayed assertion within its minute keeps the ids it accepted.
func Verify(token string, keys KeySet, issuer, audience string, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("%w: not three dot-separated parts", ErrAssertion)
	}
	var header struct{ Alg, Kid string }
	if err := decodePart(parts[0], &header); err != nil || header.Alg != "EdDSA" {
		return c, fmt.Errorf("%w: header: want alg EdDSA", ErrAssertion)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, fmt.Errorf("%w: signature is not base64url", ErrAssertion)
	}
	verified := false
	for _, k := range keys.Keys {
		if k.Kid != header.Kid || k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		pub, err := base64.RawURLEncoding.DecodeString(k.X)
		if err == nil && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
			verified = true
		}
	}
	if !verified {
		return c, fmt.Errorf("%w: bad signature or unknown key %q", ErrAssertion, header.Kid)
	}
	if err := decodePart(parts[1], &c); err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrAssertion, err)
	}
	const skew = 5
	switch t := now.Unix(); {
	case c.Issuer != issuer:
		return c, fmt.Errorf("%w: issuer %q, want %q", ErrAssertion, c.Issuer, issuer)
	case c.Audience != audience:
		return c, fmt.Errorf("%w: audience %q, want %q", ErrAssertion, c.Audience, audience)
	case t >= c.Expires+skew:
		return c, fmt.Errorf("%w: expired", ErrAssertion)
	case t < c.NotBefore-skew:
		return c, fmt.Errorf("%w: not valid yet", ErrAssertion)
	case c.Subject == "":
		return c, fmt.Errorf("%w: no subject", ErrAssertion)
	}
	return c, nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
