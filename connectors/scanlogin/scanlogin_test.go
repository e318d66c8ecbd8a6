package scanlogin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/schemas"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

type env struct {
	kv  jetstream.KeyValue
	now *atomic.Int64
	n   atomic.Int64 // event ids
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{DataDir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	kv, err := b.KV(ctx, bus.BucketAuth)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{kv: kv, now: &atomic.Int64{}}
	e.now.Store(t0.UnixNano())
	return e
}

func (e *env) handler(confirm bool) connectors.Handler {
	return scanlogin.Handler(e.kv, scanlogin.Options{Confirm: confirm, Now: func() time.Time { return time.Unix(0, e.now.Load()) }})
}

// challenge stores a pending challenge as the gateway would.
func (e *env) challenge(t *testing.T, id string) {
	t.Helper()
	ch := schemas.AuthChallenge{ID: id, App: "helpdesk", Client: "erp-login", ClientTitle: "ERP 系统", Key: "erp",
		Status: schemas.AuthPending, CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Minute)}
	data, _ := json.Marshal(ch)
	if _, err := e.kv.Create(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
}

func (e *env) get(t *testing.T, id string) schemas.AuthChallenge {
	t.Helper()
	entry, err := e.kv.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var ch schemas.AuthChallenge
	json.Unmarshal(entry.Value(), &ch)
	return ch
}

func (e *env) event(app, user string, d schemas.EventData) *schemas.Event {
	d.Channel, d.App, d.User, d.MsgType = schemas.ChannelWeCom, app, user, "event"
	return &schemas.Event{ID: fmt.Sprintf("ev%d", e.n.Add(1)), Data: d}
}

func scanOf(id string) schemas.EventData {
	return schemas.EventData{Event: "scancode_waitmsg", EventKey: "login", ScanType: "qrcode", ScanResult: schemas.AuthQRPrefix + id}
}

func clickOf(id, key string) schemas.EventData {
	return schemas.EventData{Event: "template_card_event", EventKey: key, TaskID: schemas.AuthTaskPrefix + id, CardType: "button_interaction", ResponseCode: "rc-" + key}
}

// summary is a reply in one line: "text:<content>", "card:<task_id>" or "update:<label>".
func summary(t *testing.T, replies []connectors.Reply) string {
	t.Helper()
	if len(replies) != 1 {
		return fmt.Sprintf("%d replies", len(replies))
	}
	r := replies[0]
	if r.Priority != schemas.PriorityUrgent {
		t.Errorf("reply priority %q, want urgent (logins pass quiet hours)", r.Priority)
	}
	raw, _ := json.Marshal(r.Body)
	var b struct {
		MsgType      string `json:"msgtype"`
		Text         struct{ Content string }
		TemplateCard struct {
			TaskID string `json:"task_id"`
		} `json:"template_card"`
		Button struct {
			ReplaceName string `json:"replace_name"`
		}
	}
	json.Unmarshal(raw, &b)
	switch {
	case r.Kind == schemas.KindCardUpdate:
		return "update:" + b.Button.ReplaceName
	case b.MsgType == "template_card":
		return "card:" + b.TemplateCard.TaskID
	default:
		return "text:" + b.Text.Content
	}
}

func TestScanAndConfirm(t *testing.T) {
	e := newEnv(t)
	h := e.handler(true)
	ctx := context.Background()
	id := "0123456789abcdef0123456789abcdef"
	e.challenge(t, id)

	scan := e.event("helpdesk", "zhangsan", scanOf(id))
	steps := []struct {
		name       string
		given      *schemas.Event
		want       string // prefix of the summary
		wantStatus string
	}{
		{"first scan binds and sends the card", scan, "card:" + schemas.AuthTaskPrefix + id, schemas.AuthScanned},
		{"redelivered scan: the same card", scan, "card:", schemas.AuthScanned},
		{"same user scans again", e.event("helpdesk", "zhangsan", scanOf(id)), "text:请在收到的卡片上确认登录 ERP 系统", schemas.AuthScanned},
		{"another user scans", e.event("helpdesk", "lisi", scanOf(id)), "text:该登录二维码已被使用", schemas.AuthScanned},
		{"another user clicks", e.event("helpdesk", "lisi", clickOf(id, scanlogin.KeyConfirm)), "text:这不是您的登录请求", schemas.AuthScanned},
		{"the scanner confirms", e.event("helpdesk", "zhangsan", clickOf(id, scanlogin.KeyConfirm)), "update:已确认登录", schemas.AuthConfirmed},
		{"a late deny changes nothing", e.event("helpdesk", "zhangsan", clickOf(id, scanlogin.KeyDeny)), "update:已确认登录", schemas.AuthConfirmed},
		{"rescan after confirmation", e.event("helpdesk", "zhangsan", scanOf(id)), "text:已登录 ERP 系统", schemas.AuthConfirmed},
	}
	for _, s := range steps {
		replies, err := h.Handle(ctx, s.given)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := summary(t, replies); !strings.HasPrefix(got, s.want) {
			t.Errorf("%s: %q, want %q", s.name, got, s.want)
		}
		if ch := e.get(t, id); ch.Status != s.wantStatus || ch.User != "zhangsan" {
			t.Errorf("%s: stored %s/%s, want %s/zhangsan", s.name, ch.Status, ch.User, s.wantStatus)
		}
	}
	if ch := e.get(t, id); ch.Method != schemas.AuthMethodScan || ch.ConfirmedAt == nil || ch.ScannedAt == nil {
		t.Errorf("stored %+v", ch)
	}
}

func TestScanFailures(t *testing.T) {
	tests := []struct {
		name    string
		app     string
		scan    string // ScanResult
		advance time.Duration
		click   string // when set: scan first as zhangsan, then click this button
		want    string
		status  string // stored status afterwards ("" = not checked)
	}{
		{"expired", "helpdesk", "", 2 * time.Minute, "", "text:登录二维码已过期", schemas.AuthPending},
		{"foreign app", "hr", "", 0, "", "text:该登录二维码不属于本应用", schemas.AuthPending},
		{"unknown challenge", "helpdesk", schemas.AuthQRPrefix + "ffffffffffffffffffffffffffffffff", 0, "", "text:登录二维码无效或已过期", ""},
		{"not a key", "helpdesk", schemas.AuthQRPrefix + "a.b", 0, "", "text:登录二维码无效或已过期", ""},
		{"another QR code is ignored", "helpdesk", "https://example.com/item/1", 0, "", "0 replies", schemas.AuthPending},
		{"deny", "helpdesk", "", 0, scanlogin.KeyDeny, "update:已取消", schemas.AuthDenied},
		{"confirm after expiry", "helpdesk", "", 3 * time.Minute, scanlogin.KeyConfirm, "update:已过期", schemas.AuthScanned},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			h := e.handler(true)
			id := fmt.Sprintf("%032x", i+1)
			e.challenge(t, id)
			scan := scanOf(id)
			if tt.scan != "" {
				scan.ScanResult = tt.scan
			}
			ev := e.event(tt.app, "zhangsan", scan)
			if tt.click != "" {
				if _, err := h.Handle(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
				ev = e.event(tt.app, "zhangsan", clickOf(id, tt.click))
			}
			e.now.Add(int64(tt.advance))
			replies, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(t, replies); !strings.HasPrefix(got, tt.want) && !(tt.want == "0 replies" && len(replies) == 0) {
				t.Errorf("%q, want %q", got, tt.want)
			}
			if tt.status != "" {
				if ch := e.get(t, id); ch.Status != tt.status {
					t.Errorf("stored status %s, want %s", ch.Status, tt.status)
				}
			}
		})
	}
}

func TestUnknownButtonIsPermanent(t *testing.T) {
	e := newEnv(t)
	h := e.handler(true)
	id := fmt.Sprintf("%032x", 99)
	e.challenge(t, id)
	if _, err := h.Handle(context.Background(), e.event("helpdesk", "zhangsan", scanOf(id))); err != nil {
		t.Fatal(err)
	}
	_, err := h.Handle(context.Background(), e.event("helpdesk", "zhangsan", clickOf(id, "maybe")))
	if !connectors.IsPermanent(err) {
		t.Fatalf("unknown button: %v, want a permanent error", err)
	}
}

func TestScanWithoutConfirmStep(t *testing.T) {
	e := newEnv(t)
	h := e.handler(false)
	id := fmt.Sprintf("%032x", 7)
	e.challenge(t, id)
	replies, err := h.Handle(context.Background(), e.event("helpdesk", "wangwu", scanOf(id)))
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(t, replies); got != "text:已登录 ERP 系统" {
		t.Errorf("%q", got)
	}
	if ch := e.get(t, id); ch.Status != schemas.AuthConfirmed || ch.User != "wangwu" || ch.ConfirmedAt == nil {
		t.Errorf("stored %+v", ch)
	}
}

func TestConcurrentScansOneWinner(t *testing.T) {
	e := newEnv(t)
	h := e.handler(true)
	id := fmt.Sprintf("%032x", 42)
	e.challenge(t, id)
	users := []string{"zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba"}
	var wg sync.WaitGroup
	var cards atomic.Int32
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies, err := h.Handle(context.Background(), e.event("helpdesk", u, scanOf(id)))
			if err != nil {
				t.Error(err)
				return
			}
			if strings.HasPrefix(summary(t, replies), "card:") {
				cards.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := cards.Load(); n != 1 {
		t.Fatalf("%d users got the confirm card, want exactly 1", n)
	}
	if ch := e.get(t, id); ch.Status != schemas.AuthScanned || ch.User == "" {
		t.Fatalf("stored %+v", ch)
	}
}
