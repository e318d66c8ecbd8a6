package erp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/schemas"
)

func TestHandleText(t *testing.T) {
	srv := startERP(t, erpdemo.Config{})
	tests := []struct {
		name     string
		given    string
		wantType string
		want     []string
	}{
		{name: "order", given: "订单 1001", wantType: "markdown", want: []string{"**订单 1001**", "华东贸易有限公司", "¥800.00", "已发货", "A-100"}},
		{name: "order en", given: "order 1002", wantType: "markdown", want: []string{"北方机械厂", "已付款"}},
		{name: "stock", given: "库存 A-100", wantType: "markdown", want: []string{"**库存 A-100**", "12500 个", "上海一号仓"}},
		{name: "stock lower case", given: "stock b-200", wantType: "markdown", want: []string{"B-200", "天津仓"}},
		{name: "unknown order", given: "订单 9999", wantType: "text", want: []string{"未找到订单 9999"}},
		{name: "unknown sku", given: "库存 Z-1", wantType: "text", want: []string{"未找到物料 Z-1"}},
		{name: "order without number", given: "订单", wantType: "text", want: []string{"请带上订单号"}},
		{name: "stock without sku", given: "库存", wantType: "text", want: []string{"请带上物料编号"}},
		{name: "not a command", given: "你好", wantType: "text", want: []string{"订单 1001", "库存 A-100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConnector(t, srv.URL(), time.Second)
			replies, err := c.Handle(context.Background(), textEvent("ev-"+tt.name, "zhangsan", tt.given))
			if err != nil {
				t.Fatal(err)
			}
			if len(replies) != 1 {
				t.Fatalf("%d replies", len(replies))
			}
			r := replies[0]
			b := bodyOf(t, r)
			if b.MsgType != tt.wantType || b.ToUser != "zhangsan" || r.Priority != schemas.PriorityUrgent {
				t.Fatalf("reply %+v body %+v", r, b)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.content(), w) {
					t.Errorf("reply lacks %q:\n%s", w, b.content())
				}
			}
		})
	}
}

func TestHandleTextOfficialAccountGetsPlainText(t *testing.T) {
	srv := startERP(t, erpdemo.Config{})
	c := newConnector(t, srv.URL(), time.Second)
	ev := textEvent("ev-mp", "oAbc123", "订单 1001")
	ev.Data.Channel, ev.Data.App = schemas.ChannelMP, "service"
	replies, err := c.Handle(context.Background(), ev)
	if err != nil || len(replies) != 1 {
		t.Fatalf("%v %d", err, len(replies))
	}
	b := bodyOf(t, replies[0])
	if b.MsgType != "text" || strings.Contains(b.content(), "**") || !strings.Contains(b.content(), "订单 1001") {
		t.Fatalf("body %+v", b)
	}
}

func TestHandleFailures(t *testing.T) {
	tests := []struct {
		name          string
		setup         func(s *erpdemo.Server)
		timeout       time.Duration
		wantClass     error
		wantPermanent bool
		maxElapsed    time.Duration
	}{
		{name: "erp down", setup: func(s *erpdemo.Server) { s.SetDown(true) },
			wantClass: erp.ErrUnavailable},
		{name: "erp 502", setup: func(s *erpdemo.Server) { s.FailNext(1, http.StatusBadGateway) },
			wantClass: erp.ErrUnavailable},
		{name: "erp 429", setup: func(s *erpdemo.Server) { s.FailNext(1, http.StatusTooManyRequests) },
			wantClass: erp.ErrUnavailable},
		{name: "erp slow", setup: func(s *erpdemo.Server) { s.SetDelay(2 * time.Second) }, timeout: 100 * time.Millisecond,
			wantClass: erp.ErrUnavailable, maxElapsed: 1500 * time.Millisecond},
		{name: "erp unreachable", setup: func(s *erpdemo.Server) { _ = s.Close() },
			wantClass: erp.ErrUnavailable},
		{name: "erp 400", setup: func(s *erpdemo.Server) { s.FailNext(1, http.StatusBadRequest) },
			wantClass: erp.ErrRejected, wantPermanent: true},
		{name: "erp 401", setup: func(s *erpdemo.Server) { s.FailNext(1, http.StatusUnauthorized) },
			wantClass: erp.ErrRejected, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startERP(t, erpdemo.Config{})
			url := srv.URL()
			tt.setup(srv)
			if tt.timeout == 0 {
				tt.timeout = 2 * time.Second
			}
			c := newConnector(t, url, tt.timeout)
			start := time.Now()
			replies, err := c.Handle(context.Background(), textEvent("ev-1", "zhangsan", "订单 1001"))
			if !errors.Is(err, tt.wantClass) || connectors.IsPermanent(err) != tt.wantPermanent {
				t.Fatalf("err %v (permanent %v), want %v permanent %v", err, connectors.IsPermanent(err), tt.wantClass, tt.wantPermanent)
			}
			if tt.maxElapsed > 0 && time.Since(start) > tt.maxElapsed {
				t.Fatalf("took %s: the timeout did not cut the call", time.Since(start))
			}
			if replies != nil {
				t.Fatalf("replies with an error: %+v", replies)
			}
		})
	}
}

func TestHandleBadResponse(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>maintenance</html>"))
	}))
	defer bad.Close()
	c := newConnector(t, bad.URL, time.Second)
	_, err := c.Handle(context.Background(), textEvent("ev-1", "zhangsan", "库存 A-100"))
	if !errors.Is(err, erp.ErrBadResponse) || !connectors.IsPermanent(err) {
		t.Fatalf("err %v, want permanent ErrBadResponse", err)
	}
}

func TestHandleIgnoresOtherEvents(t *testing.T) {
	srv := startERP(t, erpdemo.Config{})
	c := newConnector(t, srv.URL(), time.Second)
	ev := clickEvent("ev-1", "lisi", "payslip-7", "confirm", "rc")
	for _, e := range []*schemas.Event{ev, {ID: "ev-2", Data: schemas.EventData{MsgType: "event", Event: "subscribe", User: "lisi"}},
		{ID: "ev-3", Data: schemas.EventData{MsgType: "image", User: "lisi"}}} {
		replies, err := c.Handle(context.Background(), e)
		if err != nil || len(replies) != 0 {
			t.Fatalf("%s: %v %+v", e.ID, err, replies)
		}
	}
	if st := srv.Stats(); st.Requests != 0 {
		t.Fatalf("ERP called %d times", st.Requests)
	}
}

func TestHandleApprovalClick(t *testing.T) {
	srv := startERP(t, erpdemo.Config{})
	c := newConnector(t, srv.URL(), time.Second)
	ctx := context.Background()
	task := erp.TaskID("9001")

	// lisi approves: the ERP records it, every approver's card shows it.
	replies, err := c.Handle(ctx, clickEvent("ev-1", "lisi", task, erp.DecisionApprove, "rc-1"))
	if err != nil || len(replies) != 2 {
		t.Fatalf("%v %+v", err, replies)
	}
	// The requester hears the outcome.
	if b := bodyOf(t, replies[1]); replies[1].Kind != schemas.KindMessage || b.ToUser != "zhangsan" || !strings.Contains(b.content(), "已同意 by lisi") {
		t.Fatalf("requester's notice %+v", b)
	}
	r := replies[0]
	b := bodyOf(t, r)
	if r.Kind != schemas.KindCardUpdate || b.ResponseCode != "rc-1" || !slices.Equal(b.UserIDs, []string{"lisi", "wangwu"}) || b.Button.ReplaceName != "已同意 by lisi" {
		t.Fatalf("card update %+v", b)
	}
	if a, _ := srv.Approval("9001"); a.Status != erp.StatusApproved || a.DecidedBy != "lisi" {
		t.Fatalf("ERP approval %+v", a)
	}

	// The same click again (a redelivery): idempotent, same outcome.
	replies, err = c.Handle(ctx, clickEvent("ev-1", "lisi", task, erp.DecisionApprove, "rc-1"))
	if err != nil || len(replies) != 2 || bodyOf(t, replies[0]).Button.ReplaceName != "已同意 by lisi" {
		t.Fatalf("repeat: %v %+v", err, replies)
	}
	if n := srv.Stats().Decisions; n != 1 {
		t.Fatalf("ERP applied %d decisions, want 1", n)
	}

	// wangwu rejects too late: his card shows lisi's decision, he is told.
	replies, err = c.Handle(ctx, clickEvent("ev-2", "wangwu", task, erp.DecisionReject, "rc-2"))
	if err != nil || len(replies) != 2 {
		t.Fatalf("conflict: %v %+v", err, replies)
	}
	if b := bodyOf(t, replies[0]); b.ResponseCode != "rc-2" || b.Button.ReplaceName != "已同意 by lisi" {
		t.Fatalf("conflict card %+v", b)
	}
	if b := bodyOf(t, replies[1]); b.ToUser != "wangwu" || !strings.Contains(b.content(), "未生效") {
		t.Fatalf("conflict text %+v", b)
	}
	if a, _ := srv.Approval("9001"); a.Status != erp.StatusApproved {
		t.Fatalf("conflicting click changed the approval: %+v", a)
	}
}

func TestHandleApprovalClickAnswers(t *testing.T) {
	tests := []struct {
		name      string
		ev        *schemas.Event
		wantKinds []string
		wantText  string
		wantCard  string
		wantErr   bool
	}{
		{name: "reject", ev: clickEvent("e", "lisi", erp.TaskID("9001"), erp.DecisionReject, "rc"),
			wantKinds: []string{schemas.KindCardUpdate, schemas.KindMessage}, wantCard: "已拒绝 by lisi", wantText: "已拒绝 by lisi"},
		{name: "not an approver", ev: clickEvent("e", "zhaoliu", erp.TaskID("9001"), erp.DecisionApprove, "rc"),
			wantKinds: []string{schemas.KindMessage}, wantText: "不是审批 9001 的审批人"},
		{name: "unknown approval", ev: clickEvent("e", "lisi", erp.TaskID("777"), erp.DecisionApprove, "rc"),
			wantKinds: []string{schemas.KindMessage, schemas.KindCardUpdate}, wantText: "审批 777 不存在", wantCard: "已失效"},
		{name: "no response code", ev: clickEvent("e", "lisi", erp.TaskID("9001"), erp.DecisionApprove, ""),
			wantKinds: []string{schemas.KindMessage, schemas.KindMessage}, wantText: "已同意 by lisi"},
		{name: "unknown button", ev: clickEvent("e", "lisi", erp.TaskID("9001"), "maybe", "rc"), wantErr: true},
		{name: "bad task id", ev: clickEvent("e", "lisi", "erp-approval-9 9", erp.DecisionApprove, "rc"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startERP(t, erpdemo.Config{})
			c := newConnector(t, srv.URL(), time.Second)
			replies, err := c.Handle(context.Background(), tt.ev)
			if tt.wantErr {
				if !connectors.IsPermanent(err) {
					t.Fatalf("err %v, want permanent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, r := range replies {
				kinds = append(kinds, r.Kind)
				b := bodyOf(t, r)
				if r.Kind == schemas.KindCardUpdate && b.Button.ReplaceName != tt.wantCard {
					t.Errorf("card %q, want %q", b.Button.ReplaceName, tt.wantCard)
				}
				if r.Kind == schemas.KindMessage && !strings.Contains(b.content(), tt.wantText) {
					t.Errorf("text %q to %s, want %q", b.content(), b.ToUser, tt.wantText)
				}
			}
			if !slices.Equal(kinds, tt.wantKinds) {
				t.Fatalf("reply kinds %v, want %v", kinds, tt.wantKinds)
			}
		})
	}
}

func TestHandleApprovalClickERPDown(t *testing.T) {
	srv := startERP(t, erpdemo.Config{})
	c := newConnector(t, srv.URL(), time.Second)
	srv.SetDown(true)
	ev := clickEvent("ev-1", "lisi", erp.TaskID("9001"), erp.DecisionApprove, "rc")
	if _, err := c.Handle(context.Background(), ev); !errors.Is(err, erp.ErrUnavailable) || connectors.IsPermanent(err) {
		t.Fatalf("err %v, want temporary ErrUnavailable", err)
	}
	if a, _ := srv.Approval("9001"); a.Status != erp.StatusPending {
		t.Fatalf("approval changed while the ERP was down: %+v", a)
	}
	srv.SetDown(false)
	replies, err := c.Handle(context.Background(), ev)
	if err != nil || len(replies) != 2 || bodyOf(t, replies[0]).Button.ReplaceName != "已同意 by lisi" {
		t.Fatalf("after recovery: %v %+v", err, replies)
	}
}
