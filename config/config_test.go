package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/sender"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseSmallest(t *testing.T) {
	c, err := config.Parse(config.Smallest, env(map[string]string{
		"WXHUB_HELPDESK_SECRET": "s3cret", "WXHUB_ERP_KEY": "erp-key-123",
		"WXHUB_WECOM_API_BASE": "http://127.0.0.1:9999", "WXHUB_GATEWAY_TIMESTAMP_WINDOW": "1m",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.WeCom.Apps[0].Secret != "s3cret" || c.API.Keys[0].Key != "erp-key-123" {
		t.Errorf("secrets not expanded: %+v", c)
	}
	if c.WeCom.APIBase != "http://127.0.0.1:9999" {
		t.Errorf("env override: api_base = %q", c.WeCom.APIBase)
	}
	if c.Gateway.TimestampWindow != time.Minute || c.Gateway.MaxBodyBytes != 1<<20 || c.NATS.Partitions != 16 {
		t.Errorf("defaults/overrides: %+v", c.Gateway)
	}
	if f := c.Runtime.GCHeapFloorMiB; f != nil {
		t.Errorf("runtime.gc_heap_floor_mib: %v, want unset (the deployment's default)", *f)
	}
	off, err := config.Parse(append(append([]byte{}, config.Smallest...), "runtime:\n  gc_heap_floor_mib: 0\n"...),
		env(map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123"}))
	if err != nil || off.Runtime.GCHeapFloorMiB == nil || *off.Runtime.GCHeapFloorMiB != 0 {
		t.Errorf("gc_heap_floor_mib: 0 must stay 0 (off): %v", err)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	base := map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123"}
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr string
	}{
		{"unset secret", string(config.Smallest), map[string]string{"WXHUB_ERP_KEY": "erp-key-123"}, "wecom.apps[0].secret: environment variable WXHUB_HELPDESK_SECRET is not set"},
		{"short aes key", strings.Replace(string(config.Smallest), "3ykkR6q2B2C", "3ykkR6q2B2", 1), base, "wecom.apps[0].encoding_aes_key: must be 43 characters, got 42"},
		{"unknown key", string(config.Smallest) + "bogus: 1\n", base, "bogus: unknown key (line 21)"},
		{"bad replicas", strings.Replace(string(config.Smallest), "replicas: 1", "replicas: 9", 1), base, "config: nats.replicas: 9, want 1..5"},
		{"key names unknown app", strings.Replace(string(config.Smallest), "apps: [helpdesk]", "apps: [nope]", 1), base, `api.keys[0].apps[0]: no WeCom app named "nope"`},
		{"bad app name", strings.Replace(string(config.Smallest), "name: helpdesk", "name: Help Desk", 1), base, "wecom.apps[0].name: must be"},
		{"bad env override", string(config.Smallest), map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123", "WXHUB_NATS_REPLICAS": "three"}, "WXHUB_NATS_REPLICAS"},
		{"not yaml", "nats: [", base, "config"},
		{"gateway public url not http", strings.Replace(string(config.Smallest), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n  public_url: hub.example.com", 1), base, `gateway.public_url: must be an absolute http(s) URL, got "hub.example.com"`},
		{"negative gc heap floor", string(config.Smallest) + "runtime:\n  gc_heap_floor_mib: -1\n", base, "runtime.gc_heap_floor_mib: must be 0 (off) to 1048576, got -1"},
		{"duplicate window shorter than the replay window", string(config.Smallest), map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123", "WXHUB_NATS_DUPLICATE_WINDOW": "1m"}, "nats.duplicate_window: must be at least 2 x gateway.timestamp_window + gateway.clock_skew (4m5s), got 1m0s"},
		// A request stamped now+2m passes the 2m timestamp check until 4m after its first receipt.
		{"duplicate window covers one side of the replay window only", string(config.Smallest), map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123", "WXHUB_NATS_DUPLICATE_WINDOW": "3m"}, "nats.duplicate_window: must be at least 2 x gateway.timestamp_window + gateway.clock_skew (4m5s), got 3m0s"},
		{"duplicate window misses the clock skew", string(config.Smallest), map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123", "WXHUB_NATS_DUPLICATE_WINDOW": "4m", "WXHUB_GATEWAY_CLOCK_SKEW": "1s"}, "(4m1s), got 4m0s"},
		{"replay window longer than the default duplicate window", string(config.Smallest), map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123", "WXHUB_GATEWAY_TIMESTAMP_WINDOW": "10m"}, "nats.duplicate_window: must be at least 2 x gateway.timestamp_window + gateway.clock_skew (20m5s), got 5m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), env(tt.env))
			if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error must be one line: %q", err)
			}
		})
	}
}

const mpYAML = `
mp:
  accounts:
    - name: service
      app_id: wx5823bf96d3bd56c7
      secret: ${WXHUB_SERVICE_SECRET}
      token: QDG6eK
      encoding_aes_key: jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C
    - name: receiveonly
      app_id: wx0000000000000001
      token: QDG6eK
      encoding_aes_key: jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C
`

// Official Accounts with a secret become sender apps of kind mp; the Official
// Account API defaults to WeChat's and takes an override like wecom.api_base.
func TestOfficialAccountsReachTheSender(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantBase string
		wantErr  string
	}{
		{name: "default api base", env: map[string]string{"WXHUB_SERVICE_SECRET": "mp-s"}, wantBase: "https://api.weixin.qq.com"},
		{name: "override", env: map[string]string{"WXHUB_SERVICE_SECRET": "mp-s", "WXHUB_MP_API_BASE": "http://127.0.0.1:8090"}, wantBase: "http://127.0.0.1:8090"},
		{name: "bad api base", env: map[string]string{"WXHUB_SERVICE_SECRET": "mp-s", "WXHUB_MP_API_BASE": "127.0.0.1:8090"}, wantErr: "mp.api_base: must be an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(mpYAML), env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sc := c.SenderConfig()
			if sc.MPAPIBase != tt.wantBase || len(sc.Apps) != 1 {
				t.Fatalf("sender config %+v", sc)
			}
			if a := sc.Apps[0]; a.Name != "service" || a.Kind != sender.AppKindMP || a.AppID != "wx5823bf96d3bd56c7" || a.Secret != "mp-s" {
				t.Errorf("sender app %+v", a)
			}
		})
	}
}

func TestDashboardWeComAppMustExist(t *testing.T) {
	raw := string(config.Smallest) + "dashboard:\n  admin_token: a-long-admin-token-123\n  wecom_app: nope\n  wecom_users: [{userid: zhangsan, role: admin}]\n"
	_, err := config.Parse([]byte(raw), env(map[string]string{"WXHUB_HELPDESK_SECRET": "s", "WXHUB_ERP_KEY": "erp-key-123"}))
	if err == nil || !strings.Contains(err.Error(), `dashboard.wecom_app: no WeCom app named "nope"`) {
		t.Fatalf("err = %v", err)
	}
}
