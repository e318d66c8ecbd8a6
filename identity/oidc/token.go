package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// tokenError is an RFC 6749 5.2 error answer.
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="wxhub-oidc"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// clientAuth checks client_secret_basic or client_secret_post.
func (p *Provider) clientAuth(r *http.Request) (Client, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: form-urlencoded inside Basic.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	cl, ok := p.cfg.client(id)
	if !ok || secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(cl.Secret)) != 1 {
		return Client{}, false
	}
	return cl, true
}

// token is POST /oidc/token: authorization_code (with PKCE) and refresh_token.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded")
		return
	}
	cl, ok := p.clientAuth(r)
	if !ok {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		p.codeGrant(w, r, cl)
	case "refresh_token":
		p.refreshGrant(w, r, cl)
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "authorization_code or refresh_token")
	}
}

// take reads and deletes a one-time record (code, refresh token): of two
// concurrent redemptions only one deletes the revision it read.
func (p *Provider) take(ctx context.Context, key string) (grant, bool, error) {
	var g grant
	e, err := p.d.Store.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return g, false, nil
	}
	if err != nil {
		return g, false, err
	}
	if err := p.d.Store.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return g, false, nil // redeemed concurrently
		}
		return g, false, err
	}
	if json.Unmarshal(e.Value(), &g) != nil {
		return g, false, nil
	}
	return g, true, nil
}

func (p *Provider) codeGrant(w http.ResponseWriter, r *http.Request, cl Client) {
	f := r.PostForm
	code := f.Get("code")
	if code == "" {
		tokenError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	}
	g, ok, err := p.take(r.Context(), hashKey("code", code))
	if err != nil {
		tokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	now := p.now()
	switch {
	case !ok || !now.Before(g.Expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		return
	case g.ClientID != cl.ID:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "the code was issued to another client")
		return
	case f.Get("redirect_uri") != g.RedirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	case !pkceOK(f.Get("code_verifier"), g.CodeChallenge):
		p.log.Info("token refused: PKCE verifier does not match", zap.String("client", cl.ID))
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	p.issueTokens(w, r, cl, g)
}

// pkceOK: BASE64URL(SHA256(verifier)) == challenge, verifier 43-128 characters (RFC 7636).
func pkceOK(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (p *Provider) refreshGrant(w http.ResponseWriter, r *http.Request, cl Client) {
	if p.cfg.RefreshTokenTTL == 0 {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "refresh tokens are off (oidc.refresh_token_ttl)")
		return
	}
	g, ok, err := p.take(r.Context(), hashKey("refresh", r.PostForm.Get("refresh_token")))
	if err != nil {
		tokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	if !ok || !p.now().Before(g.Expires) || g.ClientID != cl.ID {
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired refresh token")
		return
	}
	g.Nonce = "" // a refreshed ID token carries no nonce (OIDC Core 12.2)
	p.issueTokens(w, r, cl, g)
}

// idClaims are the ID token's claims.
type idClaims struct {
	jwt.Claims
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce,omitempty"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AZP      string   `json:"azp"`
}

// accessRecord is what an access token stands for, under hashKey("access", token).
type accessRecord struct {
	ClientID string    `json:"client_id"`
	User     string    `json:"user"`
	Scope    []string  `json:"scope"`
	Expires  time.Time `json:"exp"`
}

func (p *Provider) issueTokens(w http.ResponseWriter, r *http.Request, cl Client, g grant) {
	ctx := r.Context()
	key, err := p.keys.signer(ctx)
	if err != nil {
		p.log.Error("no signing key", zap.Error(err))
		tokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "no signing key")
		return
	}
	now := p.now()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key.priv}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "signer")
		return
	}
	idt, err := jwt.Signed(sig).Claims(idClaims{
		Claims: jwt.Claims{Issuer: p.cfg.Issuer, Subject: g.User, Audience: jwt.Audience{cl.ID},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(p.cfg.IDTokenTTL)),
			ID: randomToken(16)},
		AuthTime: g.AuthTime.Unix(), Nonce: g.Nonce, ACR: g.ACR, AMR: g.AMR, AZP: cl.ID,
	}).Serialize()
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "sign")
		return
	}
	access := randomToken(32)
	ar, _ := json.Marshal(accessRecord{ClientID: cl.ID, User: g.User, Scope: g.Scope, Expires: now.Add(p.cfg.AccessTokenTTL)})
	if _, err := p.d.Store.Create(ctx, hashKey("access", access), ar); err != nil {
		tokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	out := map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(p.cfg.AccessTokenTTL.Seconds()),
		"id_token": idt, "scope": strings.Join(g.Scope, " "),
	}
	if p.cfg.RefreshTokenTTL > 0 && slices.Contains(g.Scope, "offline_access") {
		refresh := randomToken(32)
		rg := g
		rg.RedirectURI, rg.CodeChallenge, rg.Expires = "", "", now.Add(p.cfg.RefreshTokenTTL)
		data, _ := json.Marshal(rg)
		if _, err := p.d.Store.Create(ctx, hashKey("refresh", refresh), data); err == nil {
			out["refresh_token"] = refresh
		}
	}
	p.log.Info("oidc tokens issued", zap.String("client", cl.ID), zap.String("user", g.User), zap.String("kid", key.priv.KeyID))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, out)
}

// userinfo is GET|POST /oidc/userinfo with the access token as Bearer.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub-oidc"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	var ar accessRecord
	e, err := p.d.Store.Get(r.Context(), hashKey("access", tok))
	if err != nil || json.Unmarshal(e.Value(), &ar) != nil || !p.now().Before(ar.Expires) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub-oidc", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	out := map[string]any{}
	if p.d.Claims != nil && slices.Contains(ar.Scope, "profile") {
		if extra, err := p.d.Claims(r.Context(), ar.User); err == nil {
			for k, v := range extra {
				out[k] = v
			}
		} else {
			p.log.Debug("userinfo claims unavailable", zap.String("user", ar.User), zap.Error(err))
		}
	}
	out["sub"] = ar.User
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}
