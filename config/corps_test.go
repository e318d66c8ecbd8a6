package config_test

import (
	"strings"
	"testing"

	"github.com/wxhub/wxhub/config"
)

// TestCorps: wecom.corps[] beside the top-level corp; the sender gets each
// app's corp and the per-corp limits; a name used in two corps is refused
// with its key.
func TestCorps(t *testing.T) {
	corps := `
  corps:
    - corp_id: wwsupplier0000001
      corp_api_minute: 50
      apps:
        - {name: NAME, agent_id: 1000002, secret: sb, token: t, encoding_aes_key: jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C}
api:`
	vars := env(map[string]string{"WXHUB_HELPDESK_SECRET": "s3cret", "WXHUB_ERP_KEY": "erp-key-123"})
	src := strings.Replace(string(config.Smallest), "\napi:", strings.Replace(corps, "NAME", "supplier", 1), 1)
	c, err := config.Parse([]byte(src), vars)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range c.SenderConfig().Apps {
		got[a.Name] = a.CorpID
	}
	if got["helpdesk"] != "ww0123456789abcdef" || got["supplier"] != "wwsupplier0000001" {
		t.Fatalf("sender apps' corps %v", got)
	}
	if l := c.SenderConfig().CorpLimits["wwsupplier0000001"]; l.CorpAPIMinute != 50 {
		t.Fatalf("corp limits %+v", c.SenderConfig().CorpLimits)
	}
	src = strings.Replace(string(config.Smallest), "\napi:", strings.Replace(corps, "NAME", "helpdesk", 1), 1)
	if _, err := config.Parse([]byte(src), vars); err == nil || !strings.Contains(err.Error(), `wecom.corps[0].apps[0].name: "helpdesk" is used twice`) {
		t.Fatalf("duplicate name across corps: %v", err)
	}
}

// TestDirectoryCorps: directory.apps names another corp's reader; a second
// app for one corp or an unknown app is refused with its key.
func TestDirectoryCorps(t *testing.T) {
	corps := `
  corps:
    - corp_id: wwsupplier0000001
      apps:
        - {name: supplier, agent_id: 1000002, secret: sb, token: t, encoding_aes_key: jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C}
directory:
  app: helpdesk
  apps: [APPS]
api:`
	vars := env(map[string]string{"WXHUB_HELPDESK_SECRET": "s3cret", "WXHUB_ERP_KEY": "erp-key-123"})
	for _, tc := range []struct{ apps, wantErr string }{
		{"supplier", ""},
		{"", ""},
		{"helpdesk", `directory.apps[0]: "helpdesk" is in corp ww0123456789abcdef`},
		{"nosuch", `directory.apps[0]: no WeCom app named "nosuch"`},
	} {
		src := strings.Replace(string(config.Smallest), "\napi:", strings.Replace(corps, "APPS", tc.apps, 1), 1)
		_, err := config.Parse([]byte(src), vars)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("apps [%s]: %v, want %q", tc.apps, err, tc.wantErr)
		}
	}
}
