package pin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/internal/idtest"
	"github.com/wxhub/wxhub/schemas"
)

// testCfg: cheap argon2 parameters so the tests run fast.
var testCfg = pin.Config{App: "helpdesk", MaxTries: 3, LockFor: 10 * time.Minute, ArgonTime: 1, ArgonMemory: 1024, ArgonThreads: 1}

const thePIN = "482915"

// logBuffer captures every log line, debug included, as JSON.
func logBuffer() (*zap.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel)), &buf
}

func newStore(t *testing.T, b *bus.Bus, clk *idtest.Clock, log *zap.Logger) *pin.Store {
	t.Helper()
	kv, err := b.KV(context.Background(), bus.BucketPIN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pin.NewStore(kv, testCfg, pin.WithClock(clk.Now), pin.WithLogger(log), pin.WithNotifier(pin.BusNotifier(b, "helpdesk")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLockoutAfterMaxTries(t *testing.T) {
	ctx := context.Background()
	b := bustest.Open(t, bus.Config{})
	clk := idtest.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
	log, logs := logBuffer()
	s := newStore(t, b, clk, log)
	if err := s.Verify(ctx, "zhangsan", thePIN); !errors.Is(err, pin.ErrNoPIN) {
		t.Fatalf("verify before set: %v, want ErrNoPIN", err)
	}
	if err := s.Set(ctx, "zhangsan", thePIN); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{pin.ErrWrongPIN, pin.ErrWrongPIN, pin.ErrLocked} {
		if err := s.Verify(ctx, "zhangsan", "000111"); !errors.Is(err, want) {
			t.Fatalf("wrong try %d: %v, want %v", i+1, err, want)
		}
	}
	// Locked: even the right PIN is refused until lock_for has passed.
	if err := s.Verify(ctx, "zhangsan", thePIN); !errors.Is(err, pin.ErrLocked) {
		t.Fatalf("right PIN while locked: %v, want ErrLocked", err)
	}
	clk.Advance(testCfg.LockFor - time.Second)
	if err := s.Verify(ctx, "zhangsan", thePIN); !errors.Is(err, pin.ErrLocked) {
		t.Fatalf("right PIN 1s before the lock ends: %v, want ErrLocked", err)
	}
	clk.Advance(time.Second)
	if err := s.Verify(ctx, "zhangsan", thePIN); err != nil {
		t.Fatalf("right PIN after the lock: %v", err)
	}
	// The employee was told, once, by an urgent text through WXHUB_OUT.
	out := bustest.Outbound(t, b)
	if len(out) != 1 {
		t.Fatalf("%d outbound messages, want 1 lockout notice", len(out))
	}
	var body struct {
		ToUser string `json:"touser"`
		Text   struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	_ = json.Unmarshal(out[0].Data.Body, &body)
	if body.ToUser != "zhangsan" || !strings.Contains(body.Text.Content, "锁定") || out[0].Data.Priority != "urgent" || out[0].Data.App != "helpdesk" {
		t.Fatalf("lockout notice = %+v %s", out[0].Data, out[0].Data.Body)
	}
	assertNoPIN(t, logs.String(), thePIN, "000111")
}

// assertNoPIN fails when any PIN shows in the captured logs.
func assertNoPIN(t *testing.T, logs string, pins ...string) {
	t.Helper()
	if logs == "" {
		t.Fatal("no logs captured: the check would prove nothing")
	}
	for _, p := range pins {
		if strings.Contains(logs, p) {
			t.Fatalf("PIN %q appears in the logs:\n%s", p, logs)
		}
	}
}

func TestVerifiedWithinWindow(t *testing.T) {
	ctx := context.Background()
	b := bustest.Open(t, bus.Config{})
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	clk := idtest.NewClock(t0)
	s := newStore(t, b, clk, zap.NewNop())
	if err := s.Set(ctx, "lisi", thePIN); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.VerifiedWithin(ctx, "lisi", time.Hour); ok {
		t.Fatal("verified before any verification")
	}
	if err := s.Verify(ctx, "lisi", thePIN); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  bool
	}{
		{"just verified", 0, true},
		{"inside 5m", 4*time.Minute + 59*time.Second, true},
		{"at 5m", 5 * time.Minute, true},
		{"past 5m", 5*time.Minute + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := idtest.NewClock(t0.Add(tc.after))
			s2 := newStore(t, b, c, zap.NewNop())
			got, err := s2.VerifiedWithin(ctx, "lisi", 5*time.Minute)
			if err != nil || got != tc.want {
				t.Fatalf("VerifiedWithin(5m) at +%s = %v, %v; want %v", tc.after, got, err, tc.want)
			}
		})
	}
	// A reset forgets the verification.
	if err := s.Reset(ctx, "lisi"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.VerifiedWithin(ctx, "lisi", time.Hour); ok {
		t.Fatal("still verified after reset")
	}
}

func TestConnectorsPINVerifiedWithin(t *testing.T) {
	ctx := context.Background()
	b := bustest.Open(t, bus.Config{})
	s := newStore(t, b, idtest.NewClock(time.Now()), zap.NewNop())
	if ok, err := connectors.PINVerifiedWithin(ctx, b, "wangwu", time.Minute); ok || err != nil {
		t.Fatalf("no PIN: %v, %v", ok, err)
	}
	_ = s.Set(ctx, "wangwu", thePIN)
	if ok, _ := connectors.PINVerifiedWithin(ctx, b, "wangwu", time.Minute); ok {
		t.Fatal("set but never verified counts as verified")
	}
	if err := s.Verify(ctx, "wangwu", thePIN); err != nil {
		t.Fatal(err)
	}
	if ok, err := connectors.PINVerifiedWithin(ctx, b, "wangwu", time.Minute); !ok || err != nil {
		t.Fatalf("verified just now: %v, %v", ok, err)
	}
	time.Sleep(1100 * time.Millisecond) // the helper reads the wall clock; a 1 s window must lapse
	if ok, _ := connectors.PINVerifiedWithin(ctx, b, "wangwu", time.Second); ok {
		t.Fatal("a verification older than the window still counts")
	}
}

func TestPINRules(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	s := newStore(t, b, idtest.NewClock(time.Now()), zap.NewNop())
	for _, tc := range []struct {
		given   string
		wantErr bool
	}{
		{"482915", false}, {"48291", true}, {"4829150000001", true}, {"48a915", true},
		{"111111", true}, {"123456", true}, {"654321", true}, {"９８２９１５", true},
	} {
		if err := s.CheckRules(tc.given); (err != nil) != tc.wantErr {
			t.Errorf("CheckRules(%q) = %v, wantErr %v", tc.given, err, tc.wantErr)
		}
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// TestPages walks the pages as an employee would: WeCom OAuth on the
// simulator, set the PIN, verify it, and an admin reset; the PIN is never logged.
func TestPages(t *testing.T) {
	ctx := context.Background()
	b := bustest.Open(t, bus.Config{})
	sm := idtest.Sim(t)
	log, logs := logBuffer()
	s := newStore(t, b, idtest.NewClock(time.Now()), log)
	sessions, _ := b.KV(ctx, bus.BucketOIDC)
	srv := httptest.NewServer(nil)
	defer srv.Close()
	srv.Config.Handler = s.Handler(pin.PagesDeps{
		Login: idtest.Login(sm), Sessions: sessions, PublicURL: srv.URL, Logger: log,
		AdminAuthorize: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer admin" },
	})
	br := idtest.Browser(t, sm, "zhaoliu")
	get := func(path string) (int, string) {
		resp, err := br.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	post := func(path string, form url.Values) (int, string) {
		resp, err := br.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, page := get("/pin/")
	if code != 200 || !strings.Contains(page, `id="user">zhaoliu<`) || strings.Contains(page, `name="current"`) {
		t.Fatalf("set page after OAuth: %d\n%s", code, page)
	}
	csrf := csrfRe.FindStringSubmatch(page)[1]
	if code, page = post("/pin/set", url.Values{"csrf": {"bad"}, "pin": {thePIN}, "pin2": {thePIN}}); code != 403 {
		t.Fatalf("set without the page's csrf: %d", code)
	}
	if code, page = post("/pin/set", url.Values{"csrf": {csrf}, "pin": {thePIN}, "pin2": {"482916"}}); code != 400 {
		t.Fatalf("mismatched PINs: %d", code)
	}
	if code, page = post("/pin/set", url.Values{"csrf": {csrf}, "pin": {thePIN}, "pin2": {thePIN}}); code != 200 || !strings.Contains(page, "已设置") {
		t.Fatalf("set: %d\n%s", code, page)
	}
	// Changing it now needs the current PIN.
	if _, page = get("/pin/"); !strings.Contains(page, `name="current"`) {
		t.Fatal("set page with a PIN set has no current-PIN field")
	}
	if code, _ = post("/pin/set", url.Values{"csrf": {csrf}, "current": {"999888"}, "pin": {"730419"}, "pin2": {"730419"}}); code != 403 {
		t.Fatalf("change with a wrong current PIN: %d", code)
	}
	if code, page = get("/pin/verify"); code != 200 || !strings.Contains(page, `action="/pin/verify"`) {
		t.Fatalf("verify page: %d", code)
	}
	if code, page = post("/pin/verify", url.Values{"csrf": {csrf}, "pin": {thePIN}}); code != 200 || !strings.Contains(page, "验证成功") {
		t.Fatalf("verify: %d\n%s", code, page)
	}
	if ok, _ := connectors.PINVerifiedWithin(ctx, b, "zhaoliu", time.Minute); !ok {
		t.Fatal("verification on the page not visible to connectors")
	}
	// Admin reset: refused without the admin key, done with it.
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/pin/reset", strings.NewReader(`{"user":"zhaoliu"}`))
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("reset without key: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/api/v1/pin/reset", strings.NewReader(`{"user":"zhaoliu"}`))
	req.Header.Set("Authorization", "Bearer admin")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reset: %d", resp.StatusCode)
	}
	if rec, _, _ := s.Get(ctx, "zhaoliu"); rec.HasPIN() {
		t.Fatal("PIN still set after reset")
	}
	// A browser that is not logged in is sent through WeCom OAuth, not shown the page.
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = anon.Get(srv.URL + "/pin/verify")
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, sm.URL()+"/connect/oauth2/authorize?") {
		t.Fatalf("anonymous: %d %s", resp.StatusCode, loc)
	}
	assertNoPIN(t, logs.String(), thePIN, "482916", "999888", "730419")
}

// TestResetByRescan: an employee who forgot the PIN scans the reset page's QR
// code with the WeCom app and confirms; the scanner's PIN is gone, and only
// the browser that showed the code sees the outcome.
func TestResetByRescan(t *testing.T) {
	ctx := context.Background()
	b := bustest.Open(t, bus.Config{})
	sm := idtest.Sim(t)
	s := newStore(t, b, idtest.NewClock(time.Now()), zap.NewNop())
	if err := s.Set(ctx, "sunqi", thePIN); err != nil {
		t.Fatal(err)
	}
	sessions, _ := b.KV(ctx, bus.BucketOIDC)
	auth, _ := b.KV(ctx, bus.BucketAuth)
	srv := httptest.NewServer(s.Handler(pin.PagesDeps{Login: idtest.Login(sm), Sessions: sessions, Challenges: auth, PublicURL: "http://x"}))
	defer srv.Close()
	br := idtest.Browser(t, sm, "")
	resp, err := br.Get(srv.URL + "/pin/reset")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`data-text="wxhub-login:([0-9a-f]{32})"`).FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("reset page without a QR code:\n%s", page)
	}
	status := func(c *http.Client) string {
		resp, err := c.Get(srv.URL + "/pin/reset/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return st["status"]
	}
	if st := status(br); st != "pending" {
		t.Fatalf("before scan: %q", st)
	}
	h := scanlogin.Handler(auth, scanlogin.Options{Confirm: true})
	ev := func(n int, d schemas.EventData) *schemas.Event {
		d.Channel, d.App, d.User, d.MsgType = schemas.ChannelWeCom, "helpdesk", "sunqi", "event"
		return &schemas.Event{ID: "ev" + string(rune('0'+n)), Data: d}
	}
	if _, err := h.Handle(ctx, ev(1, schemas.EventData{Event: "scancode_waitmsg", ScanType: "qrcode", ScanResult: schemas.AuthQRPrefix + m[1]})); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := s.Get(ctx, "sunqi"); !rec.HasPIN() {
		t.Fatal("PIN reset on the scan alone, before the confirm")
	}
	if _, err := h.Handle(ctx, ev(2, schemas.EventData{Event: "template_card_event", EventKey: scanlogin.KeyConfirm, TaskID: schemas.AuthTaskPrefix + m[1], ResponseCode: "rc"})); err != nil {
		t.Fatal(err)
	}
	if st := status(idtest.Browser(t, sm, "")); st != "expired" {
		t.Fatalf("another browser polled the reset: %q", st)
	}
	if st := status(br); st != "reset" {
		t.Fatalf("after confirm: %q", st)
	}
	if rec, _, _ := s.Get(ctx, "sunqi"); rec.HasPIN() {
		t.Fatal("PIN still set after the confirmed re-scan")
	}
}
