package dashboard

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tok := "0123456789abcdef"
	tests := []struct {
		name    string
		given   Config
		wantErr string // substring naming the key; "" for valid
	}{
		{"zero value is valid (disabled)", Config{}, ""},
		{"admin token", Config{AdminToken: tok}, ""},
		{"users with roles", Config{Users: []User{{Name: "a", Token: tok, Role: RoleAdmin}, {Name: "b", Token: tok + "x"}}}, ""},
		{"short admin token", Config{AdminToken: "short"}, "dashboard.admin_token"},
		{"user without name", Config{Users: []User{{Token: tok}}}, "dashboard.users[0].name"},
		{"user named admin beside admin_token", Config{AdminToken: tok, Users: []User{{Name: "admin", Token: tok + "x"}}}, "dashboard.users[0].name"},
		{"duplicate name", Config{Users: []User{{Name: "a", Token: tok}, {Name: "a", Token: tok + "x"}}}, "dashboard.users[1].name"},
		{"short user token", Config{Users: []User{{Name: "a", Token: "x"}}}, "dashboard.users[0].token"},
		{"shared token", Config{AdminToken: tok, Users: []User{{Name: "a", Token: tok}}}, "dashboard.users[0].token"},
		{"bad role", Config{Users: []User{{Name: "a", Token: tok, Role: "root"}}}, "dashboard.users[0].role"},
		{"short session key", Config{AdminToken: tok, SessionKey: "abc"}, "dashboard.session_key"},
		{"short session ttl", Config{AdminToken: tok, SessionTTL: time.Second}, "dashboard.session_ttl"},
		{"fast refresh", Config{AdminToken: tok, Refresh: time.Millisecond}, "dashboard.refresh"},
		{"huge trace scan", Config{AdminToken: tok, TraceScan: 1 << 30}, "dashboard.trace_scan"},
		{"wecom users only", Config{WeComApp: "helpdesk", WeComUsers: []WeComUser{{UserID: "zhangsan", Role: RoleAdmin}, {UserID: "li.si@corp"}}}, ""},
		{"wecom users without app", Config{WeComUsers: []WeComUser{{UserID: "zhangsan"}}}, "dashboard.wecom_app"},
		{"empty wecom userid", Config{WeComApp: "helpdesk", WeComUsers: []WeComUser{{}}}, "dashboard.wecom_users[0].userid"},
		{"wecom userid with a space", Config{WeComApp: "helpdesk", WeComUsers: []WeComUser{{UserID: "zhang san"}}}, "dashboard.wecom_users[0].userid"},
		{"wecom userid twice ignoring case", Config{WeComApp: "helpdesk", WeComUsers: []WeComUser{{UserID: "ZhangSan"}, {UserID: "zhangsan"}}}, "dashboard.wecom_users[1].userid"},
		{"bad wecom role", Config{WeComApp: "helpdesk", WeComUsers: []WeComUser{{UserID: "zhangsan", Role: "root"}}}, "dashboard.wecom_users[0].role"},
		{"token user in the wecom namespace", Config{Users: []User{{Name: "wecom:zhangsan", Token: tok}}}, "dashboard.users[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.given.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr+":") {
				t.Fatalf("Validate: %v, want ErrConfig naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestNewRefusesDisabledConfig(t *testing.T) {
	if _, err := New(Config{}, nil, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "nobody could log in") {
		t.Fatalf("New with no users: %v", err)
	}
}

func TestSessions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newSessions(strings.Repeat("k", 32), time.Hour, func() time.Time { return now })
	u := User{Name: "ops", Token: "0123456789abcdef", Role: RoleViewer}
	users := map[string]User{"ops": u}
	value, ss := s.issue(u)
	tests := []struct {
		name    string
		value   string
		users   map[string]User
		at      time.Time
		wantErr bool
	}{
		{"fresh", value, users, now, false},
		{"just before expiry", value, users, now.Add(time.Hour - time.Second), false},
		{"expired", value, users, now.Add(time.Hour), true},
		{"user removed", value, map[string]User{}, now, true},
		{"token changed", value, map[string]User{"ops": {Name: "ops", Token: "another-token-0123", Role: RoleViewer}}, now, true},
		{"role changed", value, map[string]User{"ops": {Name: "ops", Token: u.Token, Role: RoleAdmin}}, now, true},
		{"no signature", strings.Split(value, ".")[0], users, now, true},
		{"garbage", "a.b", users, now, true},
		{"other key", func() string {
			v, _ := newSessions(strings.Repeat("x", 32), time.Hour, func() time.Time { return now }).issue(u)
			return v
		}(), users, now, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			s.now = func() time.Time { return at }
			got, err := s.verify(tt.value, tt.users)
			if tt.wantErr {
				if !errors.Is(err, ErrSession) {
					t.Fatalf("verify: %v, want ErrSession", err)
				}
				return
			}
			if err != nil || got.User != "ops" || got.Role != RoleViewer {
				t.Fatalf("verify: %+v %v", got, err)
			}
		})
	}
	if !s.checkCSRF(ss, s.csrf(ss)) || s.checkCSRF(ss, "") || s.checkCSRF(ss, s.csrf(session{Nonce: "other"})) {
		t.Fatal("csrf check")
	}
}

func TestFindUser(t *testing.T) {
	users := []User{{Name: "a", Token: "token-a-0123456789"}, {Name: "b", Token: "token-b-0123456789"}}
	tests := []struct {
		name  string
		given string
		want  string
	}{
		{"first", "token-a-0123456789", "a"},
		{"second", "token-b-0123456789", "b"},
		{"prefix", "token-a", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := findUser(users, tt.given)
			if ok != (tt.want != "") || u.Name != tt.want {
				t.Fatalf("findUser: %+v %v, want %q", u, ok, tt.want)
			}
		})
	}
}
