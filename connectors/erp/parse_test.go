package erp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		want   Command
		wantOK bool
	}{
		{"order zh", "订单 1001", Command{CmdOrder, "1001"}, true},
		{"order zh no space", "订单1001", Command{CmdOrder, "1001"}, true},
		{"order zh full-width colon", "订单：1001", Command{CmdOrder, "1001"}, true},
		{"order zh 号", "订单号 1001", Command{CmdOrder, "1001"}, true},
		{"order zh 查询 prefix", "查询订单 1001", Command{CmdOrder, "1001"}, true},
		{"order en", "order 1001", Command{CmdOrder, "1001"}, true},
		{"order en upper", "ORDER #1001", Command{CmdOrder, "1001"}, true},
		{"order en colon", "order:1001", Command{CmdOrder, "1001"}, true},
		{"full-width space", "订单\u30001001", Command{CmdOrder, "1001"}, true},
		{"voice transcript", "订单1001。", Command{CmdOrder, "1001"}, true},
		{"stock zh", "库存 A-100", Command{CmdStock, "A-100"}, true},
		{"stock lower sku", "stock a-100", Command{CmdStock, "A-100"}, true},
		{"stock padded", "  库存   A-100  ", Command{CmdStock, "A-100"}, true},
		{"keyword only", "订单", Command{CmdOrder, ""}, true},
		{"stock keyword only", "stock", Command{CmdStock, ""}, true},
		{"bad argument", "订单 10 01", Command{CmdOrder, ""}, true},
		{"argument too long", "订单 " + strings.Repeat("9", 40), Command{CmdOrder, ""}, true},
		{"not a command", "你好", Command{}, false},
		{"latin word starting with keyword", "stockholm", Command{}, false},
		{"orders plural", "orders 1001", Command{}, false},
		{"keyword later in text", "我的订单 1001", Command{}, false},
		{"empty", "", Command{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseCommand(tt.given)
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("ParseCommand(%q) = %+v, %v; want %+v, %v", tt.given, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestApprovalIDFromTaskID(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		want   string
		wantOK bool
	}{
		{"ok", "erp-approval-9001", "9001", true},
		{"letters", "erp-approval-AP_7@x", "AP_7@x", true},
		{"other prefix", "payslip-9001", "", false},
		{"empty id", "erp-approval-", "", false},
		{"bad char", "erp-approval-90 01", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ApprovalIDFromTaskID(tt.given)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("got %q %v, want %q %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if id, ok := ApprovalIDFromTaskID(TaskID("42")); !ok || id != "42" {
		t.Fatalf("TaskID round trip: %q %v", id, ok)
	}
}

func TestFormatMoney(t *testing.T) {
	tests := []struct {
		cents    int64
		currency string
		want     string
	}{
		{0, "CNY", "¥0.00"},
		{5, "", "¥0.05"},
		{252000, "CNY", "¥2,520.00"},
		{123456789, "CNY", "¥1,234,567.89"},
		{-100050, "CNY", "-¥1,000.50"},
		{-100050, "USD", "-1,000.50 USD"},
		{99900, "USD", "999.00 USD"},
	}
	for _, tt := range tests {
		if got := FormatMoney(tt.cents, tt.currency); got != tt.want {
			t.Errorf("FormatMoney(%d, %q) = %q, want %q", tt.cents, tt.currency, got, tt.want)
		}
	}
}

func TestApprovalCard(t *testing.T) {
	a := Approval{ID: "9001", Title: strings.Repeat("很长的标题", 10), Description: "desc", AmountCents: 252000,
		Currency: "CNY", Requester: "zhangsan", Approvers: []string{"lisi", "wangwu"}}
	raw, err := json.Marshal(ApprovalCard(a))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		CardType  string                            `json:"card_type"`
		TaskID    string                            `json:"task_id"`
		MainTitle struct{ Title string }            `json:"main_title"`
		Buttons   []struct{ Text, Key string }      `json:"button_list"`
		KV        []struct{ Keyname, Value string } `json:"horizontal_content_list"`
		Sub       string                            `json:"sub_title_text"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.CardType != "button_interaction" || c.TaskID != "erp-approval-9001" || c.Sub != "desc" {
		t.Fatalf("card %s", raw)
	}
	if n := len([]rune(c.MainTitle.Title)); n != 26 || !strings.HasSuffix(c.MainTitle.Title, "…") {
		t.Fatalf("title not clipped to 26 runes: %q", c.MainTitle.Title)
	}
	if len(c.Buttons) != 2 || c.Buttons[0].Key != DecisionApprove || c.Buttons[1].Key != DecisionReject {
		t.Fatalf("buttons %+v", c.Buttons)
	}
	if len(c.KV) != 2 || c.KV[0].Value != "¥2,520.00" || c.KV[1].Value != "zhangsan" {
		t.Fatalf("content %+v", c.KV)
	}
}

func TestOutcomeLabel(t *testing.T) {
	tests := []struct {
		given Approval
		want  string
	}{
		{Approval{Status: StatusApproved, DecidedBy: "lisi"}, "已同意 by lisi"},
		{Approval{Status: StatusRejected, DecidedBy: "wangwu"}, "已拒绝 by wangwu"},
		{Approval{Status: StatusPending}, "待审批"},
	}
	for _, tt := range tests {
		if got := OutcomeLabel(tt.given); got != tt.want {
			t.Errorf("OutcomeLabel(%+v) = %q, want %q", tt.given, got, tt.want)
		}
	}
}

func TestSummaries(t *testing.T) {
	o := Order{ID: "1001", Customer: "华东贸易", AmountCents: 80000, Currency: "CNY", Status: "shipped",
		CreatedAt: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Items: []OrderItem{{SKU: "A-100", Name: "螺栓", Quantity: 500}}}
	got := OrderSummary(o)
	for _, want := range []string{"**订单 1001**", "客户：华东贸易", "金额：¥800.00", "状态：已发货 (shipped)", "> A-100 螺栓 × 500"} {
		if !strings.Contains(got, want) {
			t.Errorf("order summary lacks %q:\n%s", want, got)
		}
	}
	if p := plain(got); strings.Contains(p, "**") || !strings.Contains(p, "- A-100 螺栓 × 500") {
		t.Errorf("plain: %q", p)
	}
	s := StockSummary(Stock{SKU: "A-100", Name: "螺栓", Quantity: 12500, Unit: "个", Warehouse: "上海一号仓"})
	if !strings.Contains(s, "数量：12500 个") || !strings.Contains(s, "仓库：上海一号仓") {
		t.Errorf("stock summary: %s", s)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		given   Config
		wantErr string
	}{
		{name: "ok", given: Config{BaseURL: "http://127.0.0.1:8081"}},
		{name: "no base url", given: Config{}, wantErr: "base_url: is required"},
		{name: "not http", given: Config{BaseURL: "ftp://erp"}, wantErr: "base_url"},
		{name: "no host", given: Config{BaseURL: "http://"}, wantErr: "base_url"},
		{name: "tiny timeout", given: Config{BaseURL: "http://erp", Timeout: time.Millisecond}, wantErr: "timeout"},
		{name: "negative max deliver", given: Config{BaseURL: "http://erp", MaxDeliver: -1}, wantErr: "max_deliver"},
		{name: "retry max below min", given: Config{BaseURL: "http://erp", RetryMin: time.Minute, RetryMax: time.Second}, wantErr: "retry_min"},
		{name: "concurrency", given: Config{BaseURL: "http://erp", Concurrency: -2}, wantErr: "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.given.WithDefaults().Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrConfig naming %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(Config{}, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with bad config: %v", err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{404, ErrNotFound}, {409, ErrConflict}, {403, ErrForbidden}, {400, ErrRejected}, {401, ErrRejected},
		{422, ErrRejected}, {429, ErrUnavailable}, {408, ErrUnavailable}, {500, ErrUnavailable}, {502, ErrUnavailable}, {503, ErrUnavailable},
	}
	for _, tt := range tests {
		if got := classify(tt.status); got != tt.want {
			t.Errorf("classify(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}
