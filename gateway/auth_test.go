package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

const returnURL = "https://erp.example.com/login/return"

// authEnv is a gateway with login clients configured, on an embedded bus, with
// the simulator as WeCom.
type authEnv struct {
	*env
	sim *sim.Server
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	s, err := sim.New(sim.DemoConfig().WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	cfg := testConfig()
	cfg.WeCom.APIBase = s.URL()
	cfg.WeCom.CorpID = sim.DefaultCorpID
	cfg.WeCom.Apps[0].Secret = "helpdesk-demo-secret"
	cfg.Auth.SigningKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cfg.Auth.Clients = []gateway.AuthClient{
		{Name: "erp-login", Title: "ERP 系统", Keys: []string{"erp"}, RedirectURLs: []string{"https://erp.example.com/login/"}},
	}
	return &authEnv{env: startEnv(t, cfg), sim: s}
}

func (e *authEnv) advance(d time.Duration) { e.now.Add(int64(d)) }

func (e *authEnv) create(t *testing.T, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/auth/challenges", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return doJSON(t, req)
}

func (e *authEnv) poll(t *testing.T, key, id string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/auth/challenges/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	return doJSON(t, req)
}

func (e *authEnv) mustCreate(t *testing.T, body string) string {
	t.Helper()
	status, out := e.create(t, apiKey, body)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	return out["id"].(string)
}

// setChallenge plays the scanlogin connector: it rewrites the stored challenge.
func (e *authEnv) setChallenge(t *testing.T, id string, mod func(*schemas.AuthChallenge)) {
	t.Helper()
	ctx := context.Background()
	kv, err := e.bus.KV(ctx, bus.BucketAuth)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var ch schemas.AuthChallenge
	if err := json.Unmarshal(entry.Value(), &ch); err != nil {
		t.Fatal(err)
	}
	mod(&ch)
	data, _ := json.Marshal(ch)
	if _, err := kv.Update(ctx, id, data, entry.Revision()); err != nil {
		t.Fatal(err)
	}
}

func confirm(user string) func(*schemas.AuthChallenge) {
	return func(ch *schemas.AuthChallenge) {
		ch.Status, ch.User, ch.Method = schemas.AuthConfirmed, user, schemas.AuthMethodScan
	}
}

var errVerify = errors.New("assertion does not verify")

// verify checks an assertion as a relying party would: the JWK Set from
// /api/v1/auth/keys, the EdDSA signature, issuer, audience and expiry.
func (e *authEnv) verify(t *testing.T, token, aud string) (map[string]any, error) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/api/v1/auth/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %v %+v", err, set)
	}
	k := set.Keys[0]
	if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Kid == "" {
		t.Fatalf("JWK %+v", k)
	}
	pub, _ := base64.RawURLEncoding.DecodeString(k.X)
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errVerify
	}
	var header map[string]string
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if json.Unmarshal(hb, &header) != nil || header["alg"] != "EdDSA" || header["kid"] != k.Kid {
		return nil, errVerify
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(ed25519.PublicKey(pub), []byte(parts[0]+"."+parts[1]), sig) {
		return nil, errVerify
	}
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(pb, &claims); err != nil {
		return nil, errVerify
	}
	now := float64(time.Unix(0, e.now.Load()).Unix())
	if claims["iss"] != "wxhub" || claims["aud"] != aud || claims["exp"].(float64) <= now {
		return nil, errVerify
	}
	return claims, nil
}

func TestCreateChallengeValidation(t *testing.T) {
	e := newAuthEnv(t)
	tests := []struct {
		name      string
		key, body string
		want      int
		wantField string
	}{
		{"own name as client", apiKey, `{"app":"helpdesk"}`, 201, ""},
		{"configured client", apiKey, `{"app":"helpdesk","client":"erp-login"}`, 201, ""},
		{"configured client with return", apiKey, `{"app":"helpdesk","client":"erp-login","return":"https://erp.example.com/login/return?x=1"}`, 201, ""},
		{"no key", "", `{"app":"helpdesk"}`, 401, ""},
		{"wrong key", "nope-nope-nope", `{"app":"helpdesk"}`, 401, ""},
		{"missing app", apiKey, `{"client":"erp-login"}`, 400, "app"},
		{"unknown app", apiKey, `{"app":"ghost"}`, 400, "app"},
		{"app outside scope", apiKey, `{"app":"hr"}`, 403, "app"},
		{"client of another key", "all-apps-key-1", `{"app":"helpdesk","client":"erp-login"}`, 403, "client"},
		{"unconfigured client", apiKey, `{"app":"helpdesk","client":"finance"}`, 403, "client"},
		{"bad client name", apiKey, `{"app":"helpdesk","client":"a b"}`, 400, "client"},
		{"return outside redirect_urls", apiKey, `{"app":"helpdesk","client":"erp-login","return":"https://evil.example.com/login/"}`, 400, "return"},
		{"return without configured client", apiKey, `{"app":"helpdesk","return":"https://erp.example.com/login/"}`, 400, "return"},
		{"unknown field", apiKey, `{"app":"helpdesk","user":"zhangsan"}`, 400, ""},
		{"not json", apiKey, `{"app":`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.create(t, tt.key, tt.body)
			if status != tt.want {
				t.Fatalf("status %d (%v), want %d", status, body, tt.want)
			}
			if tt.wantField != "" && body["field"] != tt.wantField {
				t.Errorf("field %v, want %q (%v)", body["field"], tt.wantField, body)
			}
			if status != 201 {
				return
			}
			id, _ := body["id"].(string)
			if len(id) != 32 || body["qr_text"] != schemas.AuthQRPrefix+id || body["poll"] != "/api/v1/auth/challenges/"+id || body["status"] != "pending" {
				t.Errorf("body %v", body)
			}
			exp, _ := time.Parse(time.RFC3339, body["expires_at"].(string))
			if !exp.Equal(fixedNow.Add(2 * time.Minute)) {
				t.Errorf("expires_at %v, want now + 2m", exp)
			}
			_, hasOAuth := body["oauth_url"]
			if hasOAuth != strings.Contains(tt.body, "return") {
				t.Errorf("oauth_url present=%v for %s", hasOAuth, tt.body)
			}
		})
	}
}

func TestChallengeAssertionOnce(t *testing.T) {
	e := newAuthEnv(t)
	id := e.mustCreate(t, `{"app":"helpdesk","client":"erp-login"}`)
	if status, st := e.poll(t, apiKey, id); status != 200 || st["status"] != "pending" || st["assertion"] != nil {
		t.Fatalf("fresh: %d %v", status, st)
	}
	e.setChallenge(t, id, func(ch *schemas.AuthChallenge) { ch.Status, ch.User = schemas.AuthScanned, "zhangsan" })
	if _, st := e.poll(t, apiKey, id); st["status"] != "scanned" || st["user"] != nil {
		t.Fatalf("scanned: %v (the user is not told before confirmation)", st)
	}
	e.setChallenge(t, id, confirm("zhangsan"))
	e.advance(10 * time.Second)

	status, st := e.poll(t, apiKey, id)
	if status != 200 || st["status"] != "confirmed" || st["user"] != "zhangsan" {
		t.Fatalf("confirmed: %d %v", status, st)
	}
	token := st["assertion"].(string)
	claims, err := e.verify(t, token, "erp-login")
	if err != nil {
		t.Fatal(err)
	}
	iat := fixedNow.Add(10 * time.Second).Unix()
	for k, want := range map[string]any{"sub": "zhangsan", "corp": sim.DefaultCorpID, "app": "helpdesk", "cid": id,
		"iat": float64(iat), "exp": float64(iat + 60)} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if claims["jti"] == "" || claims["amr"].([]any)[0] != schemas.AuthMethodScan {
		t.Errorf("claims %v", claims)
	}
	if _, err := e.verify(t, token, "other-client"); err == nil {
		t.Error("verified for another audience")
	}

	// Tampering: another subject under the same signature, or a flipped signature byte.
	parts := strings.Split(token, ".")
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(pb, []byte("zhangsan"), []byte("lisi"), 1)) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	flipped := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	for name, bad := range map[string]string{"forged subject": forged, "flipped signature": flipped, "two parts": parts[0] + "." + parts[1]} {
		if _, err := e.verify(t, bad, "erp-login"); !errors.Is(err, errVerify) {
			t.Errorf("%s: verified", name)
		}
	}

	if _, st := e.poll(t, apiKey, id); st["status"] != "consumed" || st["assertion"] != nil || st["user"] != "zhangsan" {
		t.Fatalf("second poll: %v, want consumed without assertion", st)
	}
	if status, _ := e.poll(t, "all-apps-key-1", id); status != 404 {
		t.Errorf("another key's poll: %d, want 404", status)
	}
	if status, _ := e.poll(t, apiKey, strings.Repeat("0", 32)); status != 404 {
		t.Errorf("unknown id: %d, want 404", status)
	}
	if status, _ := e.poll(t, apiKey, "not-a-challenge-id"); status != 404 {
		t.Errorf("malformed id: %d, want 404", status)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/auth/challenges/"+id, nil)
	if status, _ := doJSON(t, req); status != 401 {
		t.Errorf("poll without key: %d, want 401", status)
	}
}

func TestChallengeExpiry(t *testing.T) {
	e := newAuthEnv(t)
	tests := []struct {
		name    string
		given   func(*schemas.AuthChallenge) // nil: left pending
		advance time.Duration
		want    string
	}{
		{"pending within ttl", nil, 119 * time.Second, "pending"},
		{"pending at ttl", nil, 2 * time.Minute, "expired"},
		{"scanned past ttl", func(ch *schemas.AuthChallenge) { ch.Status, ch.User = schemas.AuthScanned, "lisi" }, 3 * time.Minute, "expired"},
		{"confirmed within grace", confirm("lisi"), 2*time.Minute + 29*time.Second, "confirmed"},
		{"confirmed past grace", confirm("lisi"), 2*time.Minute + 30*time.Second, "expired"},
		{"denied", func(ch *schemas.AuthChallenge) { ch.Status, ch.User = schemas.AuthDenied, "lisi" }, time.Second, "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.now.Store(fixedNow.UnixNano())
			id := e.mustCreate(t, `{"app":"helpdesk"}`)
			if tt.given != nil {
				e.setChallenge(t, id, tt.given)
			}
			e.advance(tt.advance)
			_, st := e.poll(t, apiKey, id)
			if st["status"] != tt.want {
				t.Fatalf("status %v, want %s", st, tt.want)
			}
			if (st["assertion"] != nil) != (tt.want == "confirmed") {
				t.Errorf("assertion present = %v for %s", st["assertion"] != nil, tt.want)
			}
		})
	}
}

func TestChallengeConcurrentPollsGetOneAssertion(t *testing.T) {
	e := newAuthEnv(t)
	id := e.mustCreate(t, `{"app":"helpdesk"}`)
	e.setChallenge(t, id, confirm("wangwu"))
	var wg sync.WaitGroup
	var assertions atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, st := e.poll(t, apiKey, id); st["assertion"] != nil {
				assertions.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := assertions.Load(); n != 1 {
		t.Fatalf("%d polls got an assertion, want exactly 1", n)
	}
}

// noRedirect returns the gateway's redirect instead of following it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (e *authEnv) oauth(t *testing.T, query string) (int, url.Values, string) {
	t.Helper()
	resp, err := noRedirect.Get(e.srv.URL + "/api/v1/auth/oauth/callback?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil {
		return resp.StatusCode, nil, string(body)
	}
	if resp.StatusCode == http.StatusSeeOther && !strings.HasPrefix(loc.String(), returnURL) {
		t.Fatalf("redirected to %s, want the challenge's return", loc)
	}
	return resp.StatusCode, loc.Query(), string(body)
}

func TestOAuthCallback(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	status, out := e.create(t, apiKey, `{"app":"helpdesk","client":"erp-login","return":"`+returnURL+`?next=%2Forders"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	id := out["id"].(string)
	oauthURL := out["oauth_url"].(string)
	for _, want := range []string{"https://open.weixin.qq.com/connect/oauth2/authorize?appid=" + sim.DefaultCorpID,
		"redirect_uri=" + url.QueryEscape(e.srv.URL+"/api/v1/auth/oauth/callback"), "state=" + id, "agentid=1000002", "#wechat_redirect"} {
		if !strings.Contains(oauthURL, want) {
			t.Errorf("oauth_url %s lacks %s", oauthURL, want)
		}
	}
	if !strings.HasPrefix(out["sso_url"].(string), "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp") {
		t.Errorf("sso_url %v", out["sso_url"])
	}

	code, err := e.sim.IssueOAuthCode("lisi")
	if err != nil {
		t.Fatal(err)
	}
	status, q, _ := e.oauth(t, "code="+code+"&state="+id)
	if status != http.StatusSeeOther || q.Get("wxhub_challenge") != id || q.Get("next") != "/orders" {
		t.Fatalf("callback: %d %v", status, q)
	}
	claims, err := e.verify(t, q.Get("wxhub_assertion"), "erp-login")
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "lisi" || claims["amr"].([]any)[0] != schemas.AuthMethodOAuth {
		t.Errorf("claims %v", claims)
	}
	if _, st := e.poll(t, apiKey, id); st["status"] != "consumed" || st["user"] != "lisi" {
		t.Errorf("challenge after OAuth: %v", st)
	}
	// The token gettoken gave is shared with the sender in its format.
	kv, _ := e.bus.KV(ctx, bus.BucketTokens)
	if entry, err := kv.Get(ctx, sim.DefaultCorpID+"_1000002"); err != nil || !strings.Contains(string(entry.Value()), `"token"`) {
		t.Errorf("token record: %v", err)
	}

	fresh := func() string {
		_, out := e.create(t, apiKey, `{"app":"helpdesk","client":"erp-login","return":"`+returnURL+`"}`)
		return out["id"].(string)
	}
	code2, _ := e.sim.IssueOAuthCode("zhangsan")
	tests := []struct {
		name      string
		query     string
		want      int
		wantError string
	}{
		{"state used twice", "code=" + code2 + "&state=" + id, 303, "already_used"},
		{"code used twice", "code=" + code + "&state=" + fresh(), 303, "invalid_code"},
		{"no code (user refused)", "state=" + fresh(), 303, "access_denied"},
		{"unknown state", "code=" + code2 + "&state=" + strings.Repeat("a", 32), 400, ""},
		{"no state", "code=" + code2, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, q, body := e.oauth(t, tt.query)
			if status != tt.want || (tt.wantError != "" && q.Get("wxhub_error") != tt.wantError) {
				t.Fatalf("%d %v %q, want %d %s", status, q, body, tt.want, tt.wantError)
			}
			if q.Get("wxhub_assertion") != "" {
				t.Error("an assertion on a refused login")
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		id := fresh()
		e.advance(3 * time.Minute)
		if _, q, _ := e.oauth(t, "code="+code2+"&state="+id); q.Get("wxhub_error") != "expired" {
			t.Fatalf("%v, want expired", q)
		}
	})
	t.Run("challenge without return", func(t *testing.T) {
		id := e.mustCreate(t, `{"app":"helpdesk"}`)
		if status, _, _ := e.oauth(t, "code="+code2+"&state="+id); status != 400 {
			t.Fatalf("%d, want 400", status)
		}
	})
}

func TestSigningKeyConfig(t *testing.T) {
	tests := []struct {
		name, key string
		wantErr   bool
	}{
		{"empty: random", "", false},
		{"32 bytes", base64.StdEncoding.EncodeToString(make([]byte, 32)), false},
		{"url alphabet, no padding", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), false},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), true},
		{"not base64", "!!!", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Auth.SigningKey = tt.key
			err := cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate: %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "auth.signing_key") {
				t.Errorf("error %q does not name auth.signing_key", err)
			}
		})
	}
}
