package router_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/schemas"
)

const rulesYAML = `
rules:
  - name: orders
    description: "订单 <号码>: 查询订单"
    match: {msg_type: text, content: '^订单\s*\d+'}
    to: erp
  - name: audit-files
    match: {keywords: [文件, file]}
    to: [audit]
    continue: true
  - name: files
    description: "文件 <名称>: 查找文件"
    match: {keywords: [文件, file]}
    to: [fileshare]
  - name: menu
    match: {event: click, event_key: ["PAYSLIP_*", "HELP"]}
    to: finance
  - name: erp-cards
    match: {event: template_card_event, task_id: "erp-approval-*"}
    to: [erp]
  - name: cards
    match: {event: template_card_event}
    to: [finance]
  - name: mp-only
    match: {channel: mp, app: shop, msg_type: [voice]}
    to: crm
  - name: boss
    match: {users: [boss], msg_type: text}
    to: [vip, erp]
default: help
help_text: "wxhub 可以："
`

func loadRules(t *testing.T, src string) router.Config {
	t.Helper()
	var c router.Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func ev(d schemas.EventData) *schemas.Event {
	if d.Channel == "" {
		d.Channel = schemas.ChannelWeCom
	}
	if d.App == "" {
		d.App = "helpdesk"
	}
	if d.User == "" {
		d.User = "zhangsan"
	}
	return &schemas.Event{ID: "e", Data: d}
}

func TestMatch(t *testing.T) {
	r, err := router.New(loadRules(t, rulesYAML), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		given *schemas.Event
		want  []string
	}{
		{"order by regex", ev(schemas.EventData{MsgType: "text", Content: "订单 1001"}), []string{"erp"}},
		{"regex anchored", ev(schemas.EventData{MsgType: "text", Content: "我的订单 1001"}), []string{"help"}},
		{"keyword, continue adds audit", ev(schemas.EventData{MsgType: "text", Content: "找文件 合同.pdf"}), []string{"audit", "fileshare"}},
		{"keyword case-insensitive", ev(schemas.EventData{MsgType: "text", Content: "FILE report"}), []string{"audit", "fileshare"}},
		{"click with prefix key", ev(schemas.EventData{MsgType: "event", Event: "click", EventKey: "PAYSLIP_2024"}), []string{"finance"}},
		{"click exact key", ev(schemas.EventData{MsgType: "event", Event: "CLICK", EventKey: "HELP"}), []string{"finance"}},
		{"click other key", ev(schemas.EventData{MsgType: "event", Event: "click", EventKey: "OTHER"}), []string{"help"}},
		{"card event", ev(schemas.EventData{MsgType: "event", Event: "template_card_event", EventKey: "confirm"}), []string{"finance"}},
		{"card event by task id prefix", ev(schemas.EventData{MsgType: "event", Event: "template_card_event", EventKey: "approve", TaskID: "erp-approval-7"}), []string{"erp"}},
		{"mp voice", ev(schemas.EventData{Channel: "mp", App: "shop", MsgType: "voice", Recognition: "你好"}), []string{"crm"}},
		{"wecom voice is not mp", ev(schemas.EventData{MsgType: "voice"}), []string{"help"}},
		{"voice transcript matches content regex", ev(schemas.EventData{Channel: "mp", App: "other", MsgType: "text", Recognition: "订单 7"}), []string{"erp"}},
		{"user rule, two targets", ev(schemas.EventData{User: "boss", MsgType: "text", Content: "hi"}), []string{"vip", "erp"}},
		{"first match wins", ev(schemas.EventData{User: "boss", MsgType: "text", Content: "订单 9"}), []string{"erp"}},
		{"unmatched event to default", ev(schemas.EventData{MsgType: "event", Event: "subscribe"}), []string{"help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Match(tt.given); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if h := r.Rules().Help(); !strings.HasPrefix(h, "wxhub 可以：") || !strings.Contains(h, "订单 <号码>") || !strings.Contains(h, "文件 <名称>") {
		t.Fatalf("help %q", h)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		wantErr string
	}{
		{name: "ok", given: rulesYAML},
		{name: "empty", given: `{}`},
		{name: "bad regex", given: "rules:\n - {match: {}, to: a}\n - {match: {content: '(['}, to: b}", wantErr: "router.rules[1].match.content: invalid regex"},
		{name: "no targets", given: "rules:\n - {match: {msg_type: text}}", wantErr: "router.rules[0].to: at least one"},
		{name: "bad connector", given: "rules:\n - {to: [ok, 'a.b']}", wantErr: "router.rules[0].to[1]"},
		{name: "bad channel", given: "rules:\n - {match: {channel: qq}, to: a}", wantErr: "router.rules[0].match.channel"},
		{name: "empty keyword", given: "rules:\n - {match: {keywords: ['']}, to: a}", wantErr: "router.rules[0].match.keywords[0]"},
		{name: "bad default", given: "default: 'x y'", wantErr: "router.default"},
		{name: "partitions", given: "partitions: -1", wantErr: "router.partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadRules(t, tt.given).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, router.ErrConfig) || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrConfig starting %q", err, tt.wantErr)
			}
		})
	}
	var c router.Config
	if err := yaml.Unmarshal([]byte("rules: [{to: {a: b}}]"), &c); err == nil {
		t.Fatal("a map as `to` must not decode")
	}
}

// A tap gets a copy without taking the event from the rules after it or
// from the default.
func TestTapRules(t *testing.T) {
	cfg := router.Config{Default: "help", Rules: []router.Rule{
		{Name: "hook", Match: router.Match{Event: router.Strings{"subscribe", "click"}}, To: router.Strings{"legacy-events"}, Tap: true},
		{Name: "menu", Match: router.Match{Event: router.Strings{"click"}}, To: router.Strings{"crm"}},
	}}
	r, err := router.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		event string
		want  string
	}{
		{"subscribe", "help,legacy-events"}, // only the tap matched: the default still answers
		{"click", "crm,legacy-events"},      // the tap does not stop the next rule
		{"enter_agent", "help"},
	}
	for _, tt := range tests {
		got := r.Match(ev(schemas.EventData{MsgType: "event", Event: tt.event}))
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%s: to %v, want %s", tt.event, got, tt.want)
		}
	}
}

// TestMatchCorp: match.corp routes a second corp's events (data.corp) apart.
func TestMatchCorp(t *testing.T) {
	r, err := router.New(loadRules(t, `
default: help
rules:
  - name: supplier corp
    match: {corp: wwsupplier}
    to: suppliers
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for corp, want := range map[string]string{"wwsupplier": "suppliers", "wwown": "help", "": "help"} {
		if got := r.Match(ev(schemas.EventData{MsgType: "text", Content: "hi", Corp: corp})); !slices.Equal(got, []string{want}) {
			t.Fatalf("corp %q: got %v, want %s", corp, got, want)
		}
	}
}
