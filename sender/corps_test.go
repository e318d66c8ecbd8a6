package sender_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// TestCorpsLimitedApart: two corps on one WeCom host (the simulator plays
// both). The corp-wide message/send limit of the first corp is full, yet the
// second corp's app still sends its own; each app's token is fetched with its
// own corp id (the simulator refuses a secret with another corp's id) and
// shared under its own corp+agent key. A per-corp override
// (CorpLimits) gives the second corp a larger window than the first.
func TestCorpsLimitedApart(t *testing.T) {
	const supplier, corpB = "supplier", "wwsupplier0000001"
	h := newHarness(t, harnessOpts{
		users:   10,
		simApps: []sim.App{{Name: supplier, AgentID: 1000005, Secret: "sekret-b", CorpID: corpB}},
		cfg: func(c *sender.Config) {
			c.Apps = append(c.Apps, sender.App{Name: supplier, AgentID: 1000005, Secret: "sekret-b", CorpID: corpB})
			c.Limits.CorpAPIMinute = 3
			c.CorpLimits = map[string]sender.CorpLimits{corpB: {CorpAPIMinute: 4}}
		},
	})
	for i := range 6 {
		h.publishApp(testApp, fmt.Sprintf("a%d", i), fmt.Sprintf("u%d", i))
	}
	byApp := func() map[string]int {
		n := map[string]int{}
		for _, m := range h.sim.Sent() {
			n[m.App]++
		}
		return n
	}
	waitFor(t, 20*time.Second, "3 of the first corp", func() bool { return byApp()[testApp] >= 3 })
	time.Sleep(200 * time.Millisecond) // the 4th has met the full corp limit by now
	for i := range 6 {
		h.publishApp(supplier, fmt.Sprintf("b%d", i), fmt.Sprintf("u%d", i))
	}
	waitFor(t, 20*time.Second, "3 of the first corp and 4 of the second", func() bool {
		n := byApp()
		return n[testApp] >= 3 && n[supplier] >= 4
	})
	time.Sleep(200 * time.Millisecond) // a shared or ignored corp limit would show now
	if n := byApp(); n[testApp] != 3 || n[supplier] != 4 {
		t.Fatalf("sent %v, want 3 of %s (its corp full) and 4 of %s (its own corp's window)", n, testApp, supplier)
	}
	if st := h.sim.Stats(); st.GetToken[testApp] != 1 || st.GetToken[supplier] != 1 || st.Errors["40013"]+st.Errors["40001"] != 0 {
		t.Fatalf("gettoken %v, errors %v: want one token per app, each with its corp's id", st.GetToken, st.Errors)
	}
	kv, err := h.bus.KV(context.Background(), bus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{bus.TokenKey(h.sim.Config().CorpID, 1000002), bus.TokenKey(corpB, 1000005)} {
		if _, err := kv.Get(context.Background(), key); err != nil {
			t.Fatalf("token %s: %v", key, err)
		}
	}
}

func (h *harness) publishApp(app, id, touser string) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"touser": touser, "msgtype": "text", "text": map[string]string{"content": id}})
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "test", Type: "wxhub.out." + schemas.KindMessage,
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: app, Kind: schemas.KindMessage, Body: body},
	}
	if _, err := h.bus.PublishJSON(context.Background(), bus.OutSubject(app), id, schemas.SchemaOutbound, out); err != nil {
		h.t.Fatal(err)
	}
}

// TestCorpLimitUsagePerCorp: wxhub_sender_limit_usage shows each corp's
// corp-wide limits from the start, and each corp's usage against its own
// limit (corp_api_minute/hour overrides), apart from the other corp's.
func TestCorpLimitUsagePerCorp(t *testing.T) {
	const supplier, corpB = "supplier", "wwsupplier0000001"
	reg := prometheus.NewRegistry()
	h := newHarness(t, harnessOpts{
		users:   10,
		opts:    []sender.Option{sender.WithRegisterer(reg)},
		simApps: []sim.App{{Name: supplier, AgentID: 1000005, Secret: "sekret-b", CorpID: corpB}},
		cfg: func(c *sender.Config) {
			c.Apps = append(c.Apps, sender.App{Name: supplier, AgentID: 1000005, Secret: "sekret-b", CorpID: corpB})
			c.Limits.CorpAPIMinute = 10
			c.Limits.CorpAPIHour = 100
			c.CorpLimits = map[string]sender.CorpLimits{corpB: {CorpAPIMinute: 4, CorpAPIHour: 8}}
		},
	})
	corpA := h.sim.Config().CorpID
	usage := func(corp, limit string) float64 {
		return metric(t, reg, "wxhub_sender_limit_usage", L{"app": "*", "corp": corp, "limit": limit})
	}
	// Both corps' series exist before any send (metric answers -1 for a missing one).
	waitMetric(t, reg, "wxhub_sender_limit_usage", L{"app": "*", "corp": corpA, "limit": "message_send_minute"}, 0)
	for _, corp := range []string{corpA, corpB} {
		for _, limit := range []string{"message_send_minute", "message_send_hour", "appchat_send_minute", "update_template_card_hour"} {
			if v := usage(corp, limit); v != 0 {
				t.Fatalf("%s %s before any send = %v, want 0", corp, limit, v)
			}
		}
	}
	if v := metric(t, reg, "wxhub_sender_limit_usage", L{"app": supplier, "corp": corpB, "limit": "member_minute"}); v != 0 {
		t.Fatalf("supplier's member_minute carries its corp: %v", v)
	}
	for i := range 2 {
		h.publishApp(testApp, fmt.Sprintf("a%d", i), fmt.Sprintf("u%d", i))
		h.publishApp(supplier, fmt.Sprintf("b%d", i), fmt.Sprintf("u%d", i))
	}
	waitMetric(t, reg, "wxhub_sender_limit_usage", L{"app": "*", "corp": corpB, "limit": "message_send_minute"}, 2.0/4)
	waitMetric(t, reg, "wxhub_sender_limit_usage", L{"app": "*", "corp": corpA, "limit": "message_send_minute"}, 2.0/10)
	if a, b := usage(corpA, "message_send_hour"), usage(corpB, "message_send_hour"); a != 2.0/100 || b != 2.0/8 {
		t.Fatalf("hour usage: %s %v (want 0.02), %s %v (want 0.25)", corpA, a, corpB, b)
	}
}
