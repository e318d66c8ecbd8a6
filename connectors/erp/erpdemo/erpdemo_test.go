package erpdemo_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/schemas"
)

func start(t *testing.T, cfg erpdemo.Config) *erpdemo.Server {
	t.Helper()
	cfg.Logger = zaptest.NewLogger(t)
	s := erpdemo.New(cfg)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func call(t *testing.T, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func TestReadAPI(t *testing.T) {
	s := start(t, erpdemo.Config{})
	tests := []struct {
		name       string
		path       string
		wantStatus int
		want       string
	}{
		{"order", "/api/orders/1001", 200, `"customer":"华东贸易有限公司"`},
		{"order amount is the sum of its lines", "/api/orders/1001", 200, `"amount_cents":80000`},
		{"unknown order", "/api/orders/9999", 404, `"error":"no order 9999"`},
		{"stock", "/api/stock/A-100", 200, `"quantity":12500`},
		{"stock lower case", "/api/stock/a-100", 200, `"warehouse":"上海一号仓"`},
		{"unknown stock", "/api/stock/Z-9", 404, `"error"`},
		{"approval", "/api/approvals/9001", 200, `"approvers":["lisi","wangwu"]`},
		{"approvals", "/api/approvals", 200, `"id":"9002"`},
		{"unknown approval", "/api/approvals/1", 404, `"error"`},
		{"health", "/healthz", 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, http.MethodGet, s.URL()+tt.path, "")
			if status != tt.wantStatus || !strings.Contains(string(body), tt.want) {
				t.Fatalf("%d %s, want %d ~%s", status, body, tt.wantStatus, tt.want)
			}
		})
	}
}

func TestDecision(t *testing.T) {
	s := start(t, erpdemo.Config{})
	url := s.URL() + "/api/approvals/9001/decision"
	steps := []struct {
		name       string
		url        string
		given      string
		wantStatus int
		want       string
	}{
		{"bad decision", url, `{"decision":"maybe","by":"lisi"}`, 400, "decision"},
		{"no by", url, `{"decision":"approve"}`, 400, "by"},
		{"unknown field", url, `{"decision":"approve","by":"lisi","x":1}`, 400, "unknown field"},
		{"not json", url, `{`, 400, "body"},
		{"not an approver", url, `{"decision":"approve","by":"zhaoliu"}`, 403, "not an approver"},
		{"unknown approval", s.URL() + "/api/approvals/1/decision", `{"decision":"approve","by":"lisi"}`, 404, "approval 1"},
		{"approve", url, `{"decision":"approve","by":"lisi"}`, 200, `"status":"approved","decided_by":"lisi"`},
		{"same again", url, `{"decision":"approve","by":"lisi"}`, 200, `"status":"approved","decided_by":"lisi"`},
		{"same by another approver", url, `{"decision":"approve","by":"wangwu"}`, 200, `"decided_by":"lisi"`},
		{"conflicting", url, `{"decision":"reject","by":"wangwu"}`, 409, `"approval":{"id":"9001"`},
	}
	for _, st := range steps {
		status, body := call(t, http.MethodPost, st.url, st.given)
		if status != st.wantStatus || !strings.Contains(string(body), st.want) {
			t.Fatalf("%s: %d %s, want %d ~%s", st.name, status, body, st.wantStatus, st.want)
		}
	}
	if n := s.Stats().Decisions; n != 1 {
		t.Fatalf("%d decisions applied, want 1", n)
	}
}

// hubRecorder is a stand-in for wxhub's push API.
type hubRecorder struct {
	mu     sync.Mutex
	status int
	calls  int
	bodies [][]byte
	auth   string
}

func (h *hubRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.auth = r.Header.Get("Authorization")
	if h.status != 0 {
		w.WriteHeader(h.status)
		_, _ = w.Write([]byte(`{"error":"queue unavailable, retry"}`))
		return
	}
	h.bodies = append(h.bodies, raw)
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"id":"m-1","status":"queued"}`))
}

func TestCreateApprovalPushesCard(t *testing.T) {
	rec := &hubRecorder{}
	hub := httptest.NewServer(rec)
	defer hub.Close()
	s := start(t, erpdemo.Config{HubURL: hub.URL + "/", HubAPIKey: "erp-key-123", App: "helpdesk"})

	status, body := call(t, http.MethodPost, s.URL()+"/api/approvals",
		`{"title":"采购申请","description":"急","amount_cents":123400,"requester":"zhangsan","approvers":["lisi","wangwu"]}`)
	if status != http.StatusCreated {
		t.Fatalf("%d %s", status, body)
	}
	var created struct {
		Approval erp.Approval
		Push     erpdemo.PushResult
	}
	if err := json.Unmarshal(body, &created); err != nil || created.Approval.ID != "9003" || created.Approval.Status != erp.StatusPending || created.Push.ID != "m-1" {
		t.Fatalf("created %s: %v", body, err)
	}
	rec.mu.Lock()
	pushed, auth := rec.bodies[0], rec.auth
	rec.mu.Unlock()
	if auth != "Bearer erp-key-123" {
		t.Fatalf("authorization %q", auth)
	}
	// What the ERP pushes is a valid push API body.
	if err := schemas.Validate("push.v1", pushed); err != nil {
		t.Fatalf("push body %s: %v", pushed, err)
	}
	var p struct {
		Card erp.TemplateCard `json:"template_card"`
	}
	_ = json.Unmarshal(pushed, &p)
	var m map[string]any
	_ = json.Unmarshal(pushed, &m)
	if m["app"] != "helpdesk" || m["touser"] != "lisi|wangwu" || m["msgtype"] != "template_card" || m["dedup_key"] != "erp-approval-9003" {
		t.Fatalf("push body %s", pushed)
	}
	if p.Card.TaskID != "erp-approval-9003" || p.Card.CardType != "button_interaction" || len(p.Card.ButtonList) != 2 {
		t.Fatalf("card %+v", p.Card)
	}

	// Pushing again is safe: same dedup_key.
	status, body = call(t, http.MethodPost, s.URL()+"/api/approvals/9003/push", "")
	if status != 200 || !strings.Contains(string(body), `"id":"m-1"`) {
		t.Fatalf("re-push %d %s", status, body)
	}
	if st := s.Stats(); st.Pushes != 2 {
		t.Fatalf("pushes %d", st.Pushes)
	}
}

func TestCreateApprovalFailures(t *testing.T) {
	tests := []struct {
		name       string
		hubStatus  int  // the hub's answer; 0 accepts
		noHub      bool // no hub configured
		given      string
		wantStatus int
		want       string
	}{
		{name: "no title", given: `{"requester":"zhangsan","approvers":["lisi"]}`, wantStatus: 400, want: "title"},
		{name: "no approvers", given: `{"title":"t","requester":"zhangsan","approvers":[]}`, wantStatus: 400, want: "approvers"},
		{name: "bad approver", given: `{"title":"t","requester":"zhangsan","approvers":["a|b"]}`, wantStatus: 400, want: "approvers[0]"},
		{name: "negative amount", given: `{"title":"t","amount_cents":-1,"requester":"z","approvers":["lisi"]}`, wantStatus: 400, want: "amount_cents"},
		{name: "bad id", given: `{"id":"a b","title":"t","requester":"z","approvers":["lisi"]}`, wantStatus: 400, want: "id"},
		{name: "existing id", given: `{"id":"9001","title":"t","requester":"z","approvers":["lisi"]}`, wantStatus: 409, want: "already exists"},
		{name: "hub refuses", hubStatus: 400, given: `{"title":"t","requester":"z","approvers":["lisi"]}`, wantStatus: 201, want: "hub answered 400"},
		{name: "hub down", hubStatus: 503, given: `{"title":"t","requester":"z","approvers":["lisi"]}`, wantStatus: 201, want: "hub answered 503"},
		{name: "no hub", noHub: true, given: `{"title":"t","requester":"z","approvers":["lisi"]}`, wantStatus: 201, want: "no hub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &hubRecorder{status: tt.hubStatus}
			hub := httptest.NewServer(rec)
			defer hub.Close()
			cfg := erpdemo.Config{HubURL: hub.URL, HubAPIKey: "k"}
			if tt.noHub {
				cfg.HubURL = ""
			}
			s := start(t, cfg)
			status, body := call(t, http.MethodPost, s.URL()+"/api/approvals", tt.given)
			if status != tt.wantStatus || !strings.Contains(string(body), tt.want) {
				t.Fatalf("%d %s, want %d ~%s", status, body, tt.wantStatus, tt.want)
			}
			if status == 201 {
				// The approval is kept for a later push.
				if _, ok := s.Approval("9003"); !ok {
					t.Fatal("approval lost when the push failed")
				}
			}
			if tt.hubStatus == 503 {
				rec.mu.Lock()
				calls := rec.calls
				rec.mu.Unlock()
				if calls != 3 {
					t.Fatalf("hub called %d times, want 3 (retries)", calls)
				}
			}
		})
	}
}

func TestFaults(t *testing.T) {
	s := start(t, erpdemo.Config{})
	order := s.URL() + "/api/orders/1001"

	s.FailNext(2, http.StatusInternalServerError)
	for i, want := range []int{500, 500, 200} {
		if status, _ := call(t, http.MethodGet, order, ""); status != want {
			t.Fatalf("call %d: %d, want %d", i, status, want)
		}
	}
	s.SetDown(true)
	for _, u := range []string{order, s.URL() + "/healthz"} {
		if status, _ := call(t, http.MethodGet, u, ""); status != http.StatusServiceUnavailable {
			t.Fatalf("%s while down: %d", u, status)
		}
	}
	s.SetDown(false)
	if st := s.Stats(); st.Faults != 4 || st.Requests != 5 {
		t.Fatalf("stats %+v", st)
	}

	s.SetDelay(5 * time.Second)
	c := &http.Client{Timeout: 100 * time.Millisecond}
	start := time.Now()
	_, err := c.Get(order)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 3*time.Second {
		t.Fatalf("want a client timeout, got %v after %s", err, time.Since(start))
	}
	s.SetDelay(0)
	if status, _ := call(t, http.MethodGet, order, ""); status != 200 {
		t.Fatalf("after delay: %d", status)
	}
}

func TestToken(t *testing.T) {
	s := start(t, erpdemo.Config{Token: "t0k"})
	if status, _ := call(t, http.MethodGet, s.URL()+"/api/orders/1001", ""); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}
	if status, _ := call(t, http.MethodGet, s.URL()+"/api/orders/1001", "", "Authorization", "Bearer t0k"); status != 200 {
		t.Fatalf("token: %d", status)
	}
	if status, _ := call(t, http.MethodGet, s.URL()+"/healthz", ""); status != 200 {
		t.Fatalf("health without token: %d", status)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	s := erpdemo.New(erpdemo.Config{Logger: zaptest.NewLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, "127.0.0.1:0") }()
	deadline := time.Now().Add(10 * time.Second)
	for s.URL() == "" {
		if time.Now().After(deadline) {
			t.Fatal("not serving")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if status, _ := call(t, http.MethodGet, s.URL()+"/healthz", ""); status != 200 {
		t.Fatalf("health %d", status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Fatal("restart of a closed server should fail")
	}
}

func TestGoAPI(t *testing.T) {
	s := erpdemo.New(erpdemo.Config{})
	if _, err := s.Decide("9001", erp.DecisionRequest{Decision: "approve", By: "zhaoliu"}); err == nil {
		t.Fatal("non-approver decided")
	}
	if _, err := s.Push(context.Background(), "nope"); !errors.Is(err, erpdemo.ErrNotFound) {
		t.Fatalf("push unknown: %v", err)
	}
	if _, err := s.Push(context.Background(), "9001"); !errors.Is(err, erpdemo.ErrNoHub) {
		t.Fatalf("push without hub: %v", err)
	}
	if _, _, err := s.CreateApproval(context.Background(), erpdemo.NewApproval{Title: "t"}); !errors.Is(err, erpdemo.ErrInvalid) {
		t.Fatalf("invalid: %v", err)
	}
}
