package wecom_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The Official Account client against the simulator's demo account "service".
func TestMPClientAgainstSimulator(t *testing.T) {
	ctx := context.Background()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("success")) }))
	t.Cleanup(gw.Close)
	cfg := sim.DemoConfig()
	cfg.GatewayURL = gw.URL
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	acct := cfg.Accounts[0]
	c := wecom.NewMPClient(s.URL(), wecom.WithTimeout(5*time.Second))
	openid := sim.DemoOpenIDs[0]
	text := map[string]any{"touser": openid, "msgtype": "text", "text": map[string]string{"content": "你好"}}

	if _, _, err := c.GetToken(ctx, acct.AppID, "wrong"); !wecom.IsPermanent(err) || !errors.Is(err, &wecom.MPError{Code: 40125}) {
		t.Fatalf("wrong secret: %v", err)
	}
	tok, ttl, err := c.GetToken(ctx, acct.AppID, acct.Secret)
	if err != nil || tok == "" || ttl != 2*time.Hour {
		t.Fatalf("GetToken = %q, %v, %v", tok, ttl, err)
	}
	if err := c.SendCustom(ctx, tok, text); !wecom.IsPermanent(err) || !errors.Is(err, &wecom.MPError{Code: 45015}) {
		t.Fatalf("before any interaction: %v, want 45015", err)
	}
	if _, err := s.Say(ctx, "service", openid, "在吗"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendCustom(ctx, tok, text); err != nil {
		t.Fatalf("within the window: %v", err)
	}
	id, err := c.SendTemplate(ctx, tok, map[string]any{"touser": sim.DemoOpenIDs[2], "template_id": sim.DemoTemplateShipped,
		"data": map[string]any{"first": map[string]string{"value": "hi"}, "keyword1": map[string]string{"value": "1001"},
			"keyword2": map[string]string{"value": "顺丰"}, "remark": map[string]string{"value": ""}}})
	if err != nil || id == "" {
		t.Fatalf("template: %q %v", id, err)
	}
	if got := len(s.SentTo(openid)) + len(s.SentTo(sim.DemoOpenIDs[2])); got != 2 {
		t.Errorf("recorded %d messages, want 2", got)
	}
	s.ExpireTokens()
	if err := c.SendCustom(ctx, tok, text); !wecom.IsTokenExpired(err) {
		t.Fatalf("expired token: %v", err)
	}
	tok2, _, err := c.GetToken(ctx, acct.AppID, acct.Secret)
	if err != nil || tok2 == tok {
		t.Fatalf("new token %v", err)
	}
	if err := c.SendCustom(ctx, "not-a-token", text); !wecom.IsTokenExpired(err) || !errors.Is(err, &wecom.APIError{Code: 40001}) {
		t.Fatalf("unknown token on a send: %v, want 40001 classed as refresh", err)
	}
}
