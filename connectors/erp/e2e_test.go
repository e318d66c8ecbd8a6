package erp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/schemas"
)

// hub is the ERP side of the picture: the bus, a sample ERP and the ERP
// connector run by the SDK on wxhub.route.erp.*, as in a hub process.
type hub struct {
	b   *bus.Bus
	erp *erpdemo.Server
}

func startHub(t *testing.T, erpCfg erpdemo.Config, maxDeliver int) *hub {
	t.Helper()
	log := zaptest.NewLogger(t)
	b := bustest.Open(t, bus.Config{Partitions: 4})
	srv := startERP(t, erpCfg)

	cfg := erp.Config{BaseURL: srv.URL(), Timeout: time.Second, MaxDeliver: maxDeliver}
	c, err := erp.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.RunnerOptions(log)
	opts.Backoff = connectors.ConstantBackoff(100 * time.Millisecond)
	opts.PollWait = 100 * time.Millisecond
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- connectors.Run(runCtx, b, opts, c) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not stop")
		}
	})
	return &hub{b: b, erp: srv}
}

// route publishes ev as the router does.
func (h *hub) route(t *testing.T, ev *schemas.Event) {
	t.Helper()
	if _, err := h.b.PublishRoute(context.Background(), erp.Name, 0, ev); err != nil {
		t.Fatal(err)
	}
}

// out returns what landed in WXHUB_OUT in reply to event id.
func (h *hub) out(t *testing.T, id string) []schemas.Outbound {
	t.Helper()
	var out []schemas.Outbound
	for _, o := range bustest.Outbound(t, h.b) {
		if o.Data.InReplyTo == id {
			out = append(out, o)
		}
	}
	return out
}

func (h *hub) dlq(t *testing.T) []bus.DLQEntry {
	t.Helper()
	l, err := h.b.ListDLQ(context.Background(), bus.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (h *hub) routeEmpty(t *testing.T) bool {
	t.Helper()
	st, err := h.b.JS().Stream(context.Background(), bus.StreamRoute)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs == 0
}

func contents(t *testing.T, out []schemas.Outbound) []string {
	var s []string
	for _, o := range out {
		b := decodeBody(t, o.Data.Body)
		if o.Data.Kind == schemas.KindCardUpdate {
			s = append(s, "card:"+b.Button.ReplaceName)
		} else {
			s = append(s, b.content())
		}
	}
	return s
}

func TestE2EOrderAndStock(t *testing.T) {
	h := startHub(t, erpdemo.Config{}, 0)
	order := textEvent("ev-order", "zhangsan", "订单 1001")
	stock := textEvent("ev-stock", "wangwu", "库存 A-100")
	missing := textEvent("ev-missing", "zhangsan", "订单 4242")
	for _, ev := range []*schemas.Event{order, stock, missing} {
		h.route(t, ev)
	}
	for _, tc := range []struct {
		ev   *schemas.Event
		want string
	}{{order, "华东贸易有限公司"}, {stock, "12500 个"}, {missing, "未找到订单 4242"}} {
		eventually(t, "answer to "+tc.ev.ID, func() bool { return len(h.out(t, tc.ev.ID)) == 1 })
		o := h.out(t, tc.ev.ID)[0]
		b := decodeBody(t, o.Data.Body)
		if o.Data.App != "helpdesk" || o.Source != "connector/erp" || b.ToUser != tc.ev.Data.User || !strings.Contains(b.content(), tc.want) {
			t.Fatalf("%s: outbound %+v body %s", tc.ev.ID, o, o.Data.Body)
		}
	}
	eventually(t, "events acked", func() bool { return h.routeEmpty(t) })
	if l := h.dlq(t); len(l) != 0 {
		t.Fatalf("DLQ: %+v", l)
	}
}

func TestE2EERPDownThenBack(t *testing.T) {
	h := startHub(t, erpdemo.Config{}, 100)
	h.erp.SetDown(true)
	ev := textEvent("ev-down", "zhangsan", "订单 1002")
	h.route(t, ev)
	// Several failed deliveries, one notice.
	eventually(t, "retries", func() bool { return h.erp.Stats().Faults >= 4 })
	if got := contents(t, h.out(t, ev.ID)); !slices.Equal(got, []string{erp.NoticeUnavailable}) {
		t.Fatalf("while down: %q, want one notice", got)
	}
	h.erp.SetDown(false)
	eventually(t, "answer after recovery", func() bool { return len(h.out(t, ev.ID)) == 2 })
	got := contents(t, h.out(t, ev.ID))
	if got[0] != erp.NoticeUnavailable || !strings.Contains(got[1], "北方机械厂") {
		t.Fatalf("replies %q", got)
	}
	eventually(t, "event acked", func() bool { return h.routeEmpty(t) })
	if l := h.dlq(t); len(l) != 0 {
		t.Fatalf("DLQ: %+v", l)
	}
}

func TestE2EERPDownTooLongIsDeadLettered(t *testing.T) {
	h := startHub(t, erpdemo.Config{}, 3)
	h.erp.SetDown(true)
	ev := textEvent("ev-gone", "zhangsan", "库存 A-100")
	h.route(t, ev)
	eventually(t, "dead letter", func() bool { return len(h.dlq(t)) == 1 })
	d := h.dlq(t)[0].Letter.Data
	if d.Stage != "connector:erp" || d.Attempts != 3 || !strings.Contains(d.Reason, "HTTP 503") {
		t.Fatalf("dead letter %+v", d)
	}
	if got := contents(t, h.out(t, ev.ID)); !slices.Equal(got, []string{erp.NoticeUnavailable, erp.NoticeGaveUp}) {
		t.Fatalf("notices %q", got)
	}
}

// fakeHub stands for wxhub's push API: it records what the ERP pushed.
type fakeHub struct {
	mu     sync.Mutex
	bodies [][]byte
	auth   []string
}

func (f *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if r.URL.Path != "/api/v1/messages" || json.NewDecoder(r.Body).Decode(&raw) != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, raw)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"id":"out-1","status":"queued"}`))
}

func TestE2EApprovalWhileERPDown(t *testing.T) {
	fh := &fakeHub{}
	hubSrv := httptest.NewServer(fh)
	defer hubSrv.Close()
	h := startHub(t, erpdemo.Config{HubURL: hubSrv.URL, HubAPIKey: "erp-key-123"}, 100)

	// The ERP raises an approval and pushes its card to both approvers.
	a, push, err := h.erp.CreateApproval(context.Background(), erpdemo.NewApproval{
		Title: "采购申请：轴承 40 套", AmountCents: 154000, Requester: "zhangsan", Approvers: []string{"lisi", "wangwu"}})
	if err != nil || push.Error != "" || push.ID != "out-1" {
		t.Fatalf("create: %v %+v", err, push)
	}
	var card struct {
		ToUser       string `json:"touser"`
		DedupKey     string `json:"dedup_key"`
		TemplateCard struct {
			TaskID string `json:"task_id"`
		} `json:"template_card"`
	}
	if err := json.Unmarshal(fh.bodies[0], &card); err != nil || card.ToUser != "lisi|wangwu" || card.TemplateCard.TaskID != erp.TaskID(a.ID) {
		t.Fatalf("pushed %s: %v", fh.bodies[0], err)
	}

	// lisi clicks 同意 while the ERP is down.
	h.erp.SetDown(true)
	click := clickEvent("ev-click", "lisi", card.TemplateCard.TaskID, erp.DecisionApprove, "rc-lisi")
	h.route(t, click)
	eventually(t, "retries", func() bool { return h.erp.Stats().Faults >= 4 })
	if got := contents(t, h.out(t, click.ID)); !slices.Equal(got, []string{erp.NoticeUnavailable}) {
		t.Fatalf("while down: %q", got)
	}
	if got, _ := h.erp.Approval(a.ID); got.Status != erp.StatusPending {
		t.Fatalf("approval %+v", got)
	}

	// The ERP comes back: the decision is applied once, the card updated for both.
	h.erp.SetDown(false)
	eventually(t, "card update", func() bool { return len(h.out(t, click.ID)) == 4 })
	out := h.out(t, click.ID)
	upd := out[1]
	b := decodeBody(t, upd.Data.Body)
	if upd.Data.Kind != schemas.KindCardUpdate || upd.Type != "wxhub.out.card_update" || b.ResponseCode != "rc-lisi" ||
		!slices.Equal(b.UserIDs, []string{"lisi", "wangwu"}) || b.Button.ReplaceName != "已同意 by lisi" {
		t.Fatalf("card update %+v %s", upd, upd.Data.Body)
	}
	if conf := decodeBody(t, out[2].Data.Body); conf.ToUser != "lisi" || !strings.Contains(conf.content(), "已同意 by lisi") {
		t.Fatalf("confirmation %s", out[2].Data.Body)
	}
	if told := decodeBody(t, out[3].Data.Body); told.ToUser != a.Requester || !strings.Contains(told.content(), "已同意 by lisi") {
		t.Fatalf("the requester's notice %s", out[3].Data.Body)
	}
	if got, _ := h.erp.Approval(a.ID); got.Status != erp.StatusApproved || got.DecidedBy != "lisi" || h.erp.Stats().Decisions != 1 {
		t.Fatalf("approval %+v, %d decisions", got, h.erp.Stats().Decisions)
	}
	eventually(t, "event acked", func() bool { return h.routeEmpty(t) })
	if l := h.dlq(t); len(l) != 0 {
		t.Fatalf("DLQ: %+v", l)
	}
}
