package sender

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		return Config{CorpID: "ww1", Apps: []App{{Name: "helpdesk", AgentID: 1000002, Secret: "s"}}}
	}
	tests := []struct {
		name    string
		given   func(*Config)
		wantKey string
	}{
		{name: "defaults are valid", given: func(*Config) {}},
		{name: "corp id", given: func(c *Config) { c.CorpID = "" }, wantKey: "sender.corp_id"},
		{name: "no apps", given: func(c *Config) { c.Apps = nil }, wantKey: "sender.apps"},
		{name: "app twice", given: func(c *Config) { c.Apps = append(c.Apps, c.Apps[0]) }, wantKey: "sender.apps[1].name"},
		{name: "agent id", given: func(c *Config) { c.Apps[0].AgentID = 0 }, wantKey: "sender.apps[0].agent_id"},
		{name: "secret", given: func(c *Config) { c.Apps[0].Secret = "" }, wantKey: "sender.apps[0].secret"},
		{name: "time zone", given: func(c *Config) { c.TimeZone = "Mars/Olympus" }, wantKey: "sender.time_zone"},
		{name: "quiet hours", given: func(c *Config) { c.QuietHours = "late" }, wantKey: "sender.quiet_hours"},
		{name: "duplicate interval too long", given: func(c *Config) { c.DuplicateCheckInterval = 5 * time.Hour }, wantKey: "sender.duplicate_check_interval"},
		{name: "retry max below base", given: func(c *Config) { c.Retry.Base, c.Retry.Max = time.Minute, time.Second }, wantKey: "sender.retry.max"},
		{name: "negative margin", given: func(c *Config) { c.Limits.Margin = -time.Second }, wantKey: "sender.limits.margin"},
		{name: "workers", given: func(c *Config) { c.Workers = -1 }, wantKey: "sender.workers"},
		{name: "official account alone needs no corp id", given: func(c *Config) {
			c.CorpID, c.Apps = "", []App{{Name: "service", Kind: AppKindMP, AppID: "wx1", Secret: "s"}}
		}},
		{name: "official account app id", given: func(c *Config) {
			c.Apps = append(c.Apps, App{Name: "service", Kind: AppKindMP, Secret: "s"})
		}, wantKey: "sender.apps[1].app_id"},
		{name: "official account secret", given: func(c *Config) {
			c.Apps = append(c.Apps, App{Name: "service", Kind: AppKindMP, AppID: "wx1"})
		}, wantKey: "sender.apps[1].secret"},
		{name: "unknown kind", given: func(c *Config) { c.Apps[0].Kind = "sms" }, wantKey: "sender.apps[0].kind"},
		{name: "mp api base", given: func(c *Config) { c.MPAPIBase = "api.weixin.qq.com" }, wantKey: "sender.mp_api_base"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.given(&c)
			err := c.Validate()
			if tc.wantKey == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantKey+":") {
				t.Fatalf("err = %v, want ErrConfig naming %s", err, tc.wantKey)
			}
		})
	}
	d := ok().WithDefaults()
	if d.Limits.PerMemberMinute != 30 || d.Limits.PerMemberHour != 1000 || d.Limits.CorpAPIMinute != 10000 || d.TimeZone != "Asia/Shanghai" || d.MaxPending != 20000 {
		t.Fatalf("defaults: %+v", d)
	}
}
