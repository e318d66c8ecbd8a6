// Package erpdemo is a sample ERP: a small legacy-style HTTP/JSON service with
// orders, stock and approvals, shipped for the demo (`wxhub demo`) and the
// tests of the ERP connector. It pushes each new approval request to wxhub's
// push API (POST /api/v1/messages) as a template card, as a real ERP
// integration would, and can be made to fail on purpose (SetDown, SetDelay,
// FailNext) to show what the hub does when a legacy system misbehaves.
//
// API (JSON; errors are {"error": "..."}):
//
//	GET  /api/orders/{id}              200 erp.Order | 404
//	GET  /api/stock/{sku}              200 erp.Stock | 404
//	GET  /api/approvals                200 [erp.Approval]
//	GET  /api/approvals/{id}           200 erp.Approval | 404
//	POST /api/approvals                201 {"approval", "push"} (creates, then pushes the card)
//	POST /api/approvals/{id}/push      200 {"approval", "push"} (pushes the card again)
//	POST /api/approvals/{id}/decision  {"decision":"approve|reject","by":"userid"}
//	                                   200 erp.Approval (also for the same decision again);
//	                                   409 {"error","approval"} when decided the other way;
//	                                   403 not an approver; 400 bad body; 404
//	GET  /healthz                      200 ok
package erpdemo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/connectors/erp"
)

// Config configures the sample ERP. The zero value serves the seeded data and
// pushes nothing.
type Config struct {
	// HubURL is wxhub's base URL (e.g. http://127.0.0.1:8080); new approvals
	// are pushed to HubURL/api/v1/messages. Empty: approvals are not pushed.
	HubURL string
	// HubAPIKey is the push API key (sent as a bearer token; never logged).
	HubAPIKey string
	// App is the WeCom app the approval cards go through. Default "helpdesk".
	App string
	// Token, if set, must be presented by clients as "Authorization: Bearer".
	Token string
	// PushTimeout bounds one push attempt. Default 5s.
	PushTimeout time.Duration
	// Logger; default zap.NewNop().
	Logger *zap.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Stats count what the ERP was asked.
type Stats struct {
	Requests  int // API requests received (including failed ones)
	Faults    int // answered by SetDown or FailNext
	Decisions int // decisions that changed an approval
	Pushes    int // pushes accepted by the hub
}

// PushResult is the hub's answer to a push, or why it failed.
type PushResult struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// NewApproval is the body of POST /api/approvals.
type NewApproval struct {
	ID          string   `json:"id,omitempty"` // optional; default the next number
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	AmountCents int64    `json:"amount_cents"`
	Currency    string   `json:"currency,omitempty"` // default CNY
	Requester   string   `json:"requester"`
	Approvers   []string `json:"approvers"`
}

// Errors of the Go API (the HTTP API answers with the matching status).
var (
	ErrNotFound = errors.New("erpdemo: not found")
	ErrInvalid  = errors.New("erpdemo: invalid request")
	ErrExists   = errors.New("erpdemo: already exists")
	ErrNoHub    = errors.New("erpdemo: no hub configured")
)

// Server is the sample ERP. Safe for concurrent use.
type Server struct {
	cfg  Config
	log  *zap.Logger
	mux  *http.ServeMux
	push *resty.Client

	mu        sync.Mutex
	orders    map[string]erp.Order
	stock     map[string]erp.Stock
	approvals map[string]*erp.Approval
	nextID    int
	down      bool
	delay     time.Duration
	failN     int
	failCode  int
	stats     Stats
	hubURL    string
	hubKey    string

	srv    *http.Server
	ln     net.Listener
	served chan struct{}
}

// New returns a sample ERP seeded with demo data.
func New(cfg Config) *Server {
	if cfg.App == "" {
		cfg.App = "helpdesk"
	}
	if cfg.PushTimeout == 0 {
		cfg.PushTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger.Named("erpdemo"),
		hubURL: strings.TrimRight(cfg.HubURL, "/"),
		hubKey: cfg.HubAPIKey,
		// Retries are safe: every push carries the approval's dedup_key.
		push: resty.New().SetTimeout(cfg.PushTimeout).SetRetryCount(2).
			SetRetryWaitTime(200*time.Millisecond).SetRetryMaxWaitTime(time.Second).
			AddRetryCondition(func(r *resty.Response, err error) bool {
				// The hub's 503 means "queue unavailable, retry"; a 4xx will not improve.
				return err != nil || r == nil || r.StatusCode() >= 500 || r.StatusCode() == http.StatusTooManyRequests
			}).
			SetHeader("User-Agent", "erpdemo"),
	}
	s.seed()
	s.routes()
	return s
}

func (s *Server) seed() {
	now := s.cfg.Now().UTC().Truncate(time.Second)
	day := 24 * time.Hour
	s.orders = map[string]erp.Order{}
	for _, o := range []erp.Order{
		{ID: "1001", Customer: "华东贸易有限公司", Status: "shipped", CreatedAt: now.Add(-3 * day), Items: []erp.OrderItem{
			{SKU: "A-100", Name: "不锈钢螺栓 M8", Quantity: 500, UnitPriceCents: 120},
			{SKU: "A-101", Name: "螺母 M8", Quantity: 500, UnitPriceCents: 40}}},
		{ID: "1002", Customer: "北方机械厂", Status: "paid", CreatedAt: now.Add(-2 * day), Items: []erp.OrderItem{
			{SKU: "B-200", Name: "轴承 6204", Quantity: 40, UnitPriceCents: 3850}}},
		{ID: "1003", Customer: "南方建材", Status: "created", CreatedAt: now.Add(-day), Items: []erp.OrderItem{
			{SKU: "A-102", Name: "垫片 M8", Quantity: 2000, UnitPriceCents: 5},
			{SKU: "C-300", Name: "液压油 20L", Quantity: 6, UnitPriceCents: 42000}}},
		{ID: "1004", Customer: "西部电气", Status: "cancelled", CreatedAt: now.Add(-5 * day), Items: []erp.OrderItem{
			{SKU: "B-201", Name: "轴承 6205", Quantity: 10, UnitPriceCents: 4500}}},
	} {
		o.Currency = "CNY"
		for _, it := range o.Items {
			o.AmountCents += int64(it.Quantity) * it.UnitPriceCents
		}
		s.orders[o.ID] = o
	}
	s.stock = map[string]erp.Stock{}
	for _, st := range []erp.Stock{
		{SKU: "A-100", Name: "不锈钢螺栓 M8", Quantity: 12500, Unit: "个", Warehouse: "上海一号仓"},
		{SKU: "A-101", Name: "螺母 M8", Quantity: 8300, Unit: "个", Warehouse: "上海一号仓"},
		{SKU: "A-102", Name: "垫片 M8", Quantity: 0, Unit: "个", Warehouse: "上海一号仓"},
		{SKU: "B-200", Name: "轴承 6204", Quantity: 320, Unit: "套", Warehouse: "天津仓"},
		{SKU: "B-201", Name: "轴承 6205", Quantity: 85, Unit: "套", Warehouse: "天津仓"},
		{SKU: "C-300", Name: "液压油 20L", Quantity: 42, Unit: "桶", Warehouse: "成都仓"},
	} {
		st.UpdatedAt = now
		s.stock[st.SKU] = st
	}
	decided := now.Add(-day)
	s.approvals = map[string]*erp.Approval{
		"9001": {ID: "9001", Title: "采购申请：液压油 6 桶", Description: "订单 1003 所需，供应商报价已附", AmountCents: 252000,
			Currency: "CNY", Requester: "zhangsan", Approvers: []string{"lisi", "wangwu"}, Status: erp.StatusPending, CreatedAt: now.Add(-2 * time.Hour)},
		"9002": {ID: "9002", Title: "差旅报销：北京客户拜访", AmountCents: 386050, Currency: "CNY", Requester: "wangwu",
			Approvers: []string{"lisi"}, Status: erp.StatusApproved, DecidedBy: "lisi", DecidedAt: &decided, CreatedAt: now.Add(-2 * day)},
	}
	s.nextID = 9003
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /api/orders/{id}", s.getOrder)
	m.HandleFunc("GET /api/stock/{sku}", s.getStock)
	m.HandleFunc("GET /api/approvals", s.listApprovals)
	m.HandleFunc("GET /api/approvals/{id}", s.getApproval)
	m.HandleFunc("POST /api/approvals", s.createApproval)
	m.HandleFunc("POST /api/approvals/{id}/push", s.pushApproval)
	m.HandleFunc("POST /api/approvals/{id}/decision", s.decide)
	s.mux = m
}

// ServeHTTP serves the API, after the faults and the token check.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	delay, down := s.delay, s.down
	code := 0
	switch {
	case down:
		code = http.StatusServiceUnavailable
	case s.failN > 0:
		s.failN--
		code = s.failCode
	}
	if code != 0 {
		s.stats.Faults++
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client gave up: nobody to answer
		}
	}
	if code != 0 {
		writeError(w, code, "injected fault")
		return
	}
	if s.cfg.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.Token && r.URL.Path != "/healthz" {
		writeError(w, http.StatusUnauthorized, "missing or wrong token")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// SetDown makes every answer a 503 (true) or brings the ERP back (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetDelay delays every answer by d (0: none), to make clients time out.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// FailNext answers the next n requests with HTTP status.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// SetHub sets where approvals are pushed (the demo learns the gateway's
// address after the ERP started).
func (s *Server) SetHub(url, apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hubURL, s.hubKey = strings.TrimRight(url, "/"), apiKey
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Approval returns a copy of approval id.
func (s *Server) Approval(id string) (erp.Approval, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.approvals[id]
	if !ok {
		return erp.Approval{}, false
	}
	return clone(a), true
}

func clone(a *erp.Approval) erp.Approval {
	c := *a
	c.Approvers = slices.Clone(a.Approvers)
	if a.DecidedAt != nil {
		t := *a.DecidedAt
		c.DecidedAt = &t
	}
	return c
}

// CreateApproval stores a new pending approval and pushes its card to the
// hub. The approval is kept when the push fails (see PushResult.Error):
// Push sends it again.
func (s *Server) CreateApproval(ctx context.Context, n NewApproval) (erp.Approval, PushResult, error) {
	if err := validateNew(n); err != nil {
		return erp.Approval{}, PushResult{}, err
	}
	s.mu.Lock()
	if n.ID == "" {
		for s.approvals[strconv.Itoa(s.nextID)] != nil {
			s.nextID++
		}
		n.ID = strconv.Itoa(s.nextID)
		s.nextID++
	} else if s.approvals[n.ID] != nil {
		s.mu.Unlock()
		return erp.Approval{}, PushResult{}, fmt.Errorf("%w: approval %s", ErrExists, n.ID)
	}
	if n.Currency == "" {
		n.Currency = "CNY"
	}
	a := &erp.Approval{ID: n.ID, Title: n.Title, Description: n.Description, AmountCents: n.AmountCents,
		Currency: n.Currency, Requester: n.Requester, Approvers: slices.Clone(n.Approvers),
		Status: erp.StatusPending, CreatedAt: s.cfg.Now().UTC()}
	s.approvals[a.ID] = a
	created := clone(a)
	s.mu.Unlock()
	s.log.Info("approval created", zap.String("approval", created.ID), zap.Int("approvers", len(created.Approvers)))
	return created, s.pushResult(ctx, created), nil
}

func validateNew(n NewApproval) error {
	switch {
	case n.ID != "" && !erp.ValidApprovalID(n.ID):
		return fmt.Errorf("%w: id: %q, want 1-100 of [A-Za-z0-9_@-]", ErrInvalid, n.ID)
	case strings.TrimSpace(n.Title) == "":
		return fmt.Errorf("%w: title: is required", ErrInvalid)
	case n.AmountCents < 0:
		return fmt.Errorf("%w: amount_cents: %d, want >= 0", ErrInvalid, n.AmountCents)
	case strings.TrimSpace(n.Requester) == "":
		return fmt.Errorf("%w: requester: is required", ErrInvalid)
	case len(n.Approvers) == 0 || len(n.Approvers) > 1000:
		return fmt.Errorf("%w: approvers: want 1 to 1000 userids", ErrInvalid)
	}
	for i, u := range n.Approvers {
		if u == "" || strings.ContainsAny(u, "| ") {
			return fmt.Errorf("%w: approvers[%d]: %q is not a userid", ErrInvalid, i, u)
		}
	}
	return nil
}

// Push sends approval id's card to the hub (again). The dedup_key makes a
// repeated push of the same approval one message.
func (s *Server) Push(ctx context.Context, id string) (PushResult, error) {
	a, ok := s.Approval(id)
	if !ok {
		return PushResult{}, fmt.Errorf("%w: approval %s", ErrNotFound, id)
	}
	return s.pushCard(ctx, a)
}

func (s *Server) pushResult(ctx context.Context, a erp.Approval) PushResult {
	res, err := s.pushCard(ctx, a)
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

func (s *Server) pushCard(ctx context.Context, a erp.Approval) (PushResult, error) {
	s.mu.Lock()
	hub, key := s.hubURL, s.hubKey
	s.mu.Unlock()
	if hub == "" {
		return PushResult{}, ErrNoHub
	}
	body := map[string]any{
		"app":           s.cfg.App,
		"touser":        strings.Join(a.Approvers, "|"),
		"msgtype":       "template_card",
		"template_card": erp.ApprovalCard(a),
		"dedup_key":     erp.TaskID(a.ID),
	}
	var ok PushResult
	var fail struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	resp, err := s.push.R().SetContext(ctx).SetAuthToken(key).SetBody(body).Post(hub + "/api/v1/messages")
	if err != nil {
		s.log.Warn("push failed", zap.String("approval", a.ID), zap.Error(err))
		return PushResult{}, fmt.Errorf("erpdemo: push approval %s: %w", a.ID, err)
	}
	if !resp.IsSuccess() {
		_ = json.Unmarshal(resp.Body(), &fail)
		msg := fail.Error
		if fail.Field != "" {
			msg = fail.Field + ": " + msg
		}
		s.log.Warn("push refused", zap.String("approval", a.ID), zap.Int("status", resp.StatusCode()), zap.String("error", msg))
		return PushResult{}, fmt.Errorf("erpdemo: push approval %s: hub answered %d: %s", a.ID, resp.StatusCode(), msg)
	}
	// Parsed by hand: not every proxy on the way keeps the JSON content type.
	if err := json.Unmarshal(resp.Body(), &ok); err != nil || ok.ID == "" {
		return PushResult{}, fmt.Errorf("erpdemo: push approval %s: hub answered %d without a message id", a.ID, resp.StatusCode())
	}
	s.mu.Lock()
	s.stats.Pushes++
	s.mu.Unlock()
	s.log.Info("approval pushed", zap.String("approval", a.ID), zap.String("message", ok.ID))
	return ok, nil
}

// Decide records a decision: the first one wins; the same decision again
// returns the approval unchanged (idempotent); the opposite one is
// ErrConflict with the approval as it stands.
func (s *Server) Decide(id string, d erp.DecisionRequest) (erp.Approval, error) {
	if d.Decision != erp.DecisionApprove && d.Decision != erp.DecisionReject {
		return erp.Approval{}, fmt.Errorf("%w: decision: %q, want approve or reject", ErrInvalid, d.Decision)
	}
	if d.By == "" {
		return erp.Approval{}, fmt.Errorf("%w: by: is required", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.approvals[id]
	if !ok {
		return erp.Approval{}, fmt.Errorf("%w: approval %s", ErrNotFound, id)
	}
	if !slices.Contains(a.Approvers, d.By) {
		return erp.Approval{}, fmt.Errorf("%w: %s is not an approver of %s", errForbidden, d.By, id)
	}
	want := erp.StatusApproved
	if d.Decision == erp.DecisionReject {
		want = erp.StatusRejected
	}
	switch a.Status {
	case erp.StatusPending:
		now := s.cfg.Now().UTC()
		a.Status, a.DecidedBy, a.DecidedAt = want, d.By, &now
		s.stats.Decisions++
		s.log.Info("approval decided", zap.String("approval", id), zap.String("status", want), zap.String("by", d.By))
		return clone(a), nil
	case want:
		return clone(a), nil
	default:
		return clone(a), fmt.Errorf("%w: approval %s is already %s by %s", errConflict, id, a.Status, a.DecidedBy)
	}
}

var (
	errForbidden = errors.New("erpdemo: forbidden")
	errConflict  = errors.New("erpdemo: conflict")
)

// --- HTTP handlers ---

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	o, ok := s.orders[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no order "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) getStock(w http.ResponseWriter, r *http.Request) {
	sku := strings.ToUpper(r.PathValue("sku"))
	s.mu.Lock()
	st, ok := s.stock[sku]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no stock item "+sku)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) listApprovals(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	list := make([]erp.Approval, 0, len(s.approvals))
	for _, a := range s.approvals {
		list = append(list, clone(a))
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b erp.Approval) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request) {
	a, ok := s.Approval(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no approval "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) createApproval(w http.ResponseWriter, r *http.Request) {
	var n NewApproval
	if err := decodeBody(w, r, &n); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a, push, err := s.CreateApproval(r.Context(), n)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"approval": a, "push": push})
}

func (s *Server) pushApproval(w http.ResponseWriter, r *http.Request) {
	a, ok := s.Approval(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no approval "+r.PathValue("id"))
		return
	}
	push := s.pushResult(r.Context(), a)
	status := http.StatusOK
	if push.Error != "" {
		status = http.StatusBadGateway
	}
	writeJSON(w, status, map[string]any{"approval": a, "push": push})
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	var d erp.DecisionRequest
	if err := decodeBody(w, r, &d); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a, err := s.Decide(r.PathValue("id"), d)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, a)
	case errors.Is(err, errConflict):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "approval": a})
	default:
		writeError(w, statusOf(err), err.Error())
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrExists), errors.Is(err, errConflict):
		return http.StatusConflict
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// --- serving ---

// Start serves on addr (e.g. "127.0.0.1:0") in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("erpdemo: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		_ = ln.Close()
		return errors.New("erpdemo: already started")
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	srv, served := s.srv, s.served
	s.mu.Unlock()
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve failed", zap.Error(err))
		}
	}()
	s.log.Info("sample ERP listening", zap.String("url", s.URL()))
	return nil
}

// URL is the base URL once started ("" before).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops serving; requests in flight (even delayed ones) are cut short.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-served
	return err
}

// Serve runs the ERP on addr until ctx is done.
func (s *Server) Serve(ctx context.Context, addr string) error {
	if err := s.Start(addr); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}
