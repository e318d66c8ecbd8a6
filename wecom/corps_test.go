package wecom_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/wecom"
)

const aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

func app(name string, agent int64) string {
	return "{name: " + name + ", agent_id: " + strings.Repeat("1", int(agent)) + ", secret: s, token: t, encoding_aes_key: " + aesKey + "}"
}

// TestCorps: corps[] adds enterprise accounts beside the top-level one; every
// app knows its corp; bad input names the key.
func TestCorps(t *testing.T) {
	parse := func(src string) wecom.Config {
		t.Helper()
		var c wecom.Config
		if err := yaml.Unmarshal([]byte(src), &c); err != nil {
			t.Fatal(err)
		}
		return c.WithDefaults()
	}
	c := parse("corp_id: wwA\napps: [" + app("a1", 1) + "]\ncorps:\n  - corp_id: wwB\n    corp_api_minute: 5\n    apps: [" + app("b1", 2) + ", " + app("b2", 3) + "]\n")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, corp := range map[string]string{"a1": "wwA", "b1": "wwB", "b2": "wwB"} {
		if a, ok := c.App(name); !ok || a.CorpID != corp {
			t.Fatalf("app %s: %+v %v, want corp %s", name, a, ok, corp)
		}
	}
	if got := strings.Join(c.CorpIDs(), ","); got != "wwA,wwB" {
		t.Fatalf("CorpIDs %s", got)
	}
	if again := c.WithDefaults(); len(again.Apps) != 3 {
		t.Fatalf("WithDefaults twice: %d apps", len(again.Apps))
	}
	// Only corps: the first one is the hub's own corp.
	c = parse("corps:\n  - corp_id: wwB\n    apps: [" + app("b1", 2) + "]\n")
	if err := c.Validate(); err != nil || c.CorpID != "wwB" || c.Apps[0].CorpID != "wwB" {
		t.Fatalf("corps only: %v %+v", err, c)
	}

	for _, tc := range []struct{ src, want string }{
		{"corp_id: wwA\napps: [" + app("a1", 1) + "]\ncorps: [{corp_id: wwB, apps: [" + app("a1", 2) + "]}]", `wecom.corps[0].apps[0].name: "a1" is used twice`},
		{"corp_id: wwA\napps: [" + app("a1", 1) + "]\ncorps: [{corp_id: wwA, apps: [" + app("b1", 2) + "]}]", `wecom.corps[0].corp_id: "wwA" is already wecom.corp_id`},
		{"corps: [{corp_id: wwB, apps: [" + app("b1", 2) + "]}, {corp_id: wwB, apps: [" + app("b2", 2) + "]}]", `wecom.corps[1].corp_id: "wwB" is already wecom.corps[0].corp_id`},
		{"corps: [{apps: [" + app("b1", 2) + "]}]", "wecom.corps[0].corp_id: is required"},
		{"corps: [{corp_id: wwB}]", "wecom.corps[0].apps: at least one app"},
		{"corps: [{corp_id: wwB, apps: [{name: b1, agent_id: 2, token: t, encoding_aes_key: " + aesKey + "}]}]", "wecom.corps[0].apps[0].secret: is required"},
		{"corps: [{corp_id: wwB, corp_api_hour: -1, apps: [" + app("b1", 2) + "]}]", "wecom.corps[0].corp_api_hour: must not be negative"},
	} {
		err := parse(tc.src).Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}
