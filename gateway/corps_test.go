package gateway_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// TestCallbackOfSecondCorp: an app of wecom.corps[] is served at its own
// callback path, decrypted with its corp id as receive id, and its events
// carry that corp (data.corp) for routes and connectors; a callback encrypted
// for the first corp's id is refused on it.
func TestCallbackOfSecondCorp(t *testing.T) {
	const corpB = "wwsupplier0000001"
	cfg := testConfig()
	cfg.WeCom.Corps = []wecom.CorpConfig{{CorpID: corpB, Apps: []wecom.AppConfig{
		{Name: "supplier", AgentID: 1000005, Secret: "sb", Token: token, EncodingAESKey: aesKey},
	}}}
	cfg.WeCom = wecom.Config{APIBase: cfg.WeCom.APIBase, CorpID: corpID, Apps: cfg.WeCom.Apps[:2], Corps: cfg.WeCom.Corps}.WithDefaults()
	e := startEnv(t, cfg)
	crB, err := wecom.NewCrypter(token, aesKey, corpB)
	if err != nil {
		t.Fatal(err)
	}
	x, err := wecom.BuildText(corpB, "wangwu", 1000005, fixedNow.Unix(), "到货了", "900001")
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.post(t, "/wecom/supplier/callback", e.cr, x, fixedNow); resp.StatusCode == 200 {
		t.Fatal("a callback sealed for the first corp's id was accepted by the second corp's app")
	}
	if resp := e.post(t, "/wecom/supplier/callback", crB, x, fixedNow); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s, _ := e.bus.JS().Stream(context.Background(), bus.StreamIn)
	raw, err := s.GetLastMsgForSubject(context.Background(), "wxhub.in.wecom.supplier.>")
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.Event
	if err := json.Unmarshal(raw.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Data.Corp != corpB || ev.Data.App != "supplier" || ev.Data.Content != "到货了" {
		t.Fatalf("event data %+v", ev.Data)
	}
	for corp, want := range map[string]float64{corpID: 0, corpB: 0, "wwnotours": 40013} {
		status, out := doJSON(t, mustReq(t, "GET", e.srv.URL+"/cgi-bin/gettoken?corpid="+corp+"&corpsecret="+apiKey))
		if status != 200 || out["errcode"] != want {
			t.Fatalf("drop-in gettoken for corp %s: %d %v, want errcode %v", corp, status, out, want)
		}
	}
}

// TestKeyCorps: an API key's corps are those of its WeCom apps in order
// (the directory's read API reads the first by default); nil for a key of
// every app; false without a valid key.
func TestKeyCorps(t *testing.T) {
	const corpB = "wwsupplier0000001"
	cfg := testConfig()
	cfg.WeCom = wecom.Config{APIBase: cfg.WeCom.APIBase, CorpID: corpID, Apps: cfg.WeCom.Apps[:2], Corps: []wecom.CorpConfig{{CorpID: corpB,
		Apps: []wecom.AppConfig{{Name: "supplier", AgentID: 1000005, Secret: "sb", Token: token, EncodingAESKey: aesKey}}}}}.WithDefaults()
	cfg.API.Keys = append(cfg.API.Keys,
		gateway.APIKey{Name: "b-first", Key: "b-first-key-1", Apps: []string{"supplier", "helpdesk", "hr"}},
		gateway.APIKey{Name: "mp-only", Key: "mp-only-key-1", Apps: []string{"shop"}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(*cfg, bustest.Open(t, bus.Config{}), zap.NewNop(), gateway.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]string{
		apiKey:           {corpID},
		"all-apps-key-1": nil,
		"b-first-key-1":  {corpB, corpID},
		"mp-only-key-1":  {},
	} {
		r := httptest.NewRequest("GET", "/api/v1/directory/users/x", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		got, ok := g.KeyCorps(r)
		if !ok || !slices.Equal(got, want) || (want == nil) != (got == nil) {
			t.Errorf("KeyCorps(%s) = %v, %v; want %v", key, got, ok, want)
		}
	}
	if _, ok := g.KeyCorps(httptest.NewRequest("GET", "/", nil)); ok {
		t.Fatal("a request without a key has corps")
	}
}
