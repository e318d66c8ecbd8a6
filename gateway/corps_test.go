package gateway_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/wxhub/wxhub/bus"
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
