package sim_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

const (
	demoToken = "QDG6eK"
	demoKey   = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
)

// gateway is a minimal callback handler built on wecom.Crypter, standing in for
// the real gateway: it verifies, decrypts, records and answers with a passive reply.
type gateway struct {
	t       *testing.T
	crypter *wecom.Crypter
	mu      sync.Mutex
	stall   int // answer the first stall requests never (until the client gives up)
	status  int // answer status (default 200)
	bodies  []string
	events  []schemas.EventData
	queries []map[string][]string
	echoBad bool
}

func newGateway(t *testing.T, receiveID string) *gateway {
	c, err := wecom.NewCrypter(demoToken, demoKey, receiveID)
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{t: t, crypter: c, status: 200}
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodGet {
		if q.Get("msg_signature") == "" { // Official Account: plain-mode check
			if g.crypter.Signature(q.Get("timestamp"), q.Get("nonce"), "") != q.Get("signature") {
				http.Error(w, "bad signature", 403)
				return
			}
			_, _ = io.WriteString(w, q.Get("echostr"))
			return
		}
		plain, err := g.crypter.VerifyURL(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
		if err != nil {
			http.Error(w, err.Error(), 403)
			return
		}
		g.mu.Lock()
		echoBad := g.echoBad
		g.mu.Unlock()
		if echoBad {
			_, _ = io.WriteString(w, "\""+string(plain)+"\"")
			return
		}
		_, _ = w.Write(plain)
		return
	}
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.bodies = append(g.bodies, string(body))
	g.queries = append(g.queries, q)
	stall := len(g.bodies) <= g.stall
	status := g.status
	g.mu.Unlock()
	if stall {
		<-r.Context().Done()
		return
	}
	if status != 200 {
		w.WriteHeader(status)
		return
	}
	plain, err := g.crypter.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
	if err != nil {
		g.t.Errorf("gateway: decrypt: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	ev, err := wecom.ParseInbound(plain)
	if err != nil {
		g.t.Errorf("gateway: parse: %v", err)
	}
	g.mu.Lock()
	g.events = append(g.events, ev)
	g.mu.Unlock()
	if ev.MsgType != "text" {
		_, _ = io.WriteString(w, "success")
		return
	}
	reply := "<xml><ToUserName><![CDATA[" + ev.User + "]]></ToUserName><FromUserName><![CDATA[" + ev.ToUser +
		"]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[收到: " + ev.Content + "]]></Content></xml>"
	out, err := g.crypter.EncryptReply([]byte(reply), "1700000000", "42")
	if err != nil {
		g.t.Errorf("gateway: encrypt reply: %v", err)
	}
	_, _ = w.Write(out)
}

// seen returns copies of what the gateway received, under its lock.
func (g *gateway) seen() (bodies []string, queries []map[string][]string, events []schemas.EventData) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.bodies...), append([]map[string][]string(nil), g.queries...), append([]schemas.EventData(nil), g.events...)
}

func (g *gateway) ev(i int) schemas.EventData {
	_, _, evs := g.seen()
	if i >= len(evs) {
		g.t.Fatalf("gateway got %d events, want more than %d", len(evs), i)
	}
	return evs[i]
}

func playerEnv(t *testing.T, g *gateway, timeout time.Duration) *sim.Server {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	cfg := sim.DemoConfig()
	cfg.GatewayURL = srv.URL
	cfg.Callback.Timeout = timeout
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSayDeliversEncryptedCallback(t *testing.T) {
	g := newGateway(t, sim.DefaultCorpID)
	s := playerEnv(t, g, 5*time.Second)
	d, err := s.Say(context.Background(), "helpdesk", "zhangsan", "订单 1001")
	if err != nil {
		t.Fatalf("Say: %v", err)
	}
	if d.Attempts != 1 || d.Status != 200 || d.ReplyContent != "收到: 订单 1001" {
		t.Fatalf("delivery = %+v", d)
	}
	ev := g.ev(0)
	if ev.User != "zhangsan" || ev.Content != "订单 1001" || ev.AgentID != 1000002 || ev.ToUser != sim.DefaultCorpID || ev.MsgID != d.MsgID || ev.MsgID == "" {
		t.Fatalf("gateway got %+v", ev)
	}
	if _, err := s.Say(context.Background(), "helpdesk", "ghost", "x"); !errors.Is(err, sim.ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := s.Say(context.Background(), "nope", "zhangsan", "x"); !errors.Is(err, sim.ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}
}

func TestSendEventAndClickCard(t *testing.T) {
	g := newGateway(t, sim.DefaultCorpID)
	s := playerEnv(t, g, 5*time.Second)
	ctx := context.Background()
	if _, err := s.SendEvent(ctx, "helpdesk", "lisi", schemas.EventData{Event: "click", EventKey: "MENU_1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendEvent(ctx, "helpdesk", "lisi", schemas.EventData{Event: "scancode_waitmsg", EventKey: "login", ScanType: "qrcode", ScanResult: "challenge-1"}); err != nil {
		t.Fatal(err)
	}
	card := sim.SentMessage{MsgID: "m1", Body: []byte(`{"template_card":{"card_type":"button_interaction","task_id":"claim-7"}}`)}
	if _, err := s.ClickCard(ctx, "helpdesk", "lisi", card, "claim"); err != nil {
		t.Fatal(err)
	}
	click, scan, tc := g.ev(0), g.ev(1), g.ev(2)
	if click.Event != "click" || click.EventKey != "MENU_1" || click.MsgID != "" {
		t.Errorf("click = %+v", click)
	}
	if scan.ScanResult != "challenge-1" || scan.ScanType != "qrcode" {
		t.Errorf("scan = %+v", scan)
	}
	if tc.Event != "template_card_event" || tc.TaskID != "claim-7" || tc.EventKey != "claim" || tc.ResponseCode == "" {
		t.Errorf("template_card_event = %+v", tc)
	}
}

func TestPlayerRetriesLikeWeChat(t *testing.T) {
	tests := []struct {
		name         string
		stall        int
		status       int
		wantAttempts int
		wantErr      error
	}{
		{name: "answers at once", wantAttempts: 1},
		{name: "first answer late", stall: 1, wantAttempts: 2},
		{name: "two answers late", stall: 2, wantAttempts: 3},
		{name: "never answers", stall: 5, wantAttempts: 3, wantErr: sim.ErrNoAnswer},
		{name: "answers 500", status: 500, wantAttempts: 3, wantErr: sim.ErrNoAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, sim.DefaultCorpID)
			g.stall = tt.stall
			if tt.status != 0 {
				g.status = tt.status
			}
			s := playerEnv(t, g, 150*time.Millisecond)
			d, err := s.Say(context.Background(), "helpdesk", "wangwu", "合同")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			bodies, queries, _ := g.seen()
			if d.Attempts != tt.wantAttempts || len(bodies) != tt.wantAttempts {
				t.Fatalf("attempts %d, gateway saw %d, want %d", d.Attempts, len(bodies), tt.wantAttempts)
			}
			for i := 1; i < len(bodies); i++ {
				if bodies[i] != bodies[0] || queries[i]["msg_signature"][0] != queries[0]["msg_signature"][0] {
					t.Fatalf("attempt %d differs from the first", i+1)
				}
			}
			if st := s.Stats(); st.Attempts != tt.wantAttempts {
				t.Fatalf("stats.attempts = %d", st.Attempts)
			}
		})
	}
}

func TestVerifyURL(t *testing.T) {
	g := newGateway(t, sim.DefaultCorpID)
	s := playerEnv(t, g, time.Second)
	if _, err := s.VerifyURL(context.Background(), "helpdesk"); err != nil {
		t.Fatalf("VerifyURL: %v", err)
	}
	g.mu.Lock()
	g.echoBad = true
	g.mu.Unlock()
	if _, err := s.VerifyURL(context.Background(), "helpdesk"); !errors.Is(err, sim.ErrVerify) {
		t.Fatalf("quoted echo: err = %v, want ErrVerify", err)
	}
	// A gateway with another key fails to verify the signature and answers 403.
	other := newGateway(t, "wwsomeoneelse")
	s2 := playerEnv(t, other, time.Second)
	if _, err := s2.VerifyURL(context.Background(), "helpdesk"); !errors.Is(err, sim.ErrVerify) {
		t.Fatalf("wrong receive id: err = %v, want ErrVerify", err)
	}
}

func TestOfficialAccountVoiceRecognition(t *testing.T) {
	g := newGateway(t, "wx5823bf96d3bd56c7")
	s := playerEnv(t, g, time.Second)
	ctx := context.Background()
	if _, err := s.VerifyURL(ctx, "service"); err != nil {
		t.Fatalf("mp VerifyURL: %v", err)
	}
	if _, err := s.Voice(ctx, "service", "oOpenID123", "", "北京 设计师"); err != nil {
		t.Fatal(err)
	}
	ev := g.ev(0)
	if ev.MsgType != "voice" || ev.Recognition != "北京 设计师" || ev.User != "oOpenID123" || ev.ToUser != "gh_0123456789ab" || ev.AgentID != 0 {
		t.Fatalf("mp voice = %+v", ev)
	}
	_, queries, _ := g.seen()
	if q := queries[0]; q["openid"][0] != "oOpenID123" || q["encrypt_type"][0] != "aes" {
		t.Fatalf("mp query = %v", q)
	}
	// WeCom voice messages never carry a transcript.
	g2 := newGateway(t, sim.DefaultCorpID)
	s2 := playerEnv(t, g2, time.Second)
	if _, err := s2.Voice(ctx, "helpdesk", "zhangsan", "", "ignored"); err != nil {
		t.Fatal(err)
	}
	if r := g2.ev(0).Recognition; r != "" {
		t.Fatalf("WeCom voice carries Recognition %q", r)
	}
}
