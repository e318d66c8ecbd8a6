package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The simulator plays an Official Account in each message mode against the
// gateway: the URL check, a message, and the passive reply read back from the
// callback's answer (plain in plain mode, encrypted where the callback was).
func TestOfficialAccountModesThroughSimulator(t *testing.T) {
	cfg := testConfig()
	cfg.PassiveReplyWait = 3 * time.Second
	cfg.MP.Accounts = []wecom.AccountConfig{
		{Name: "plain", AppID: "wxplain", Secret: "s", Token: token, PlainText: true},
		{Name: "compat", AppID: "wxcompat", Secret: "s", Token: token, EncodingAESKey: aesKey, PlainText: true},
		{Name: "safe", AppID: "wxsafe", Secret: "s", Token: token, EncodingAESKey: aesKey},
	}
	e := startEnv(t, cfg)
	e.now.Store(time.Now().UnixNano()) // the simulator stamps callbacks with the real time
	answerer(t, e, "您好，在的", 0)
	var accounts []sim.Account
	for _, a := range cfg.MP.Accounts {
		mode := map[string]string{"plain": sim.ModePlain, "compat": sim.ModeCompatible, "safe": sim.ModeSafe}[a.Name]
		accounts = append(accounts, sim.Account{Name: a.Name, AppID: a.AppID, Token: token, EncodingAESKey: aesKey, Mode: mode})
	}
	s, err := sim.New(sim.Config{GatewayURL: e.srv.URL, Accounts: accounts})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, a := range accounts {
		t.Run(a.Mode, func(t *testing.T) {
			if d, err := s.VerifyURL(ctx, a.Name); err != nil {
				t.Fatalf("URL verification: %+v %v", d, err)
			}
			d, err := s.Say(ctx, a.Name, "oMode"+a.Name, "在吗")
			if err != nil || d.Status != 200 || d.ReplyContent != "您好，在的" {
				t.Fatalf("say: %+v %v, want the passive reply", d, err)
			}
			if m, err := s.WaitSent(ctx, func(m sim.SentMessage) bool { return m.App == a.Name }); err != nil || m.API != "passive" {
				t.Fatalf("recorded %+v %v", m, err)
			}
		})
	}
	if n := e.streamMsgs(t, bus.StreamIn); n != 3 {
		t.Fatalf("WXHUB_IN has %d, want 3", n)
	}
}
