package erp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-resty/resty/v2"
)

// Classes of ERP call failures; every error of Client wraps exactly one.
var (
	// ErrUnavailable: the ERP did not answer in time, refused the connection
	// or answered 5xx (or 429). Worth retrying.
	ErrUnavailable = errors.New("erp unavailable")
	// ErrNotFound: 404, the order, stock item or approval does not exist.
	ErrNotFound = errors.New("erp: not found")
	// ErrConflict: 409, the approval was already decided the other way.
	ErrConflict = errors.New("erp: conflict")
	// ErrForbidden: 403, e.g. the user is not an approver of the approval.
	ErrForbidden = errors.New("erp: forbidden")
	// ErrRejected: any other 4xx (bad request, bad credentials): retrying the
	// same call cannot help.
	ErrRejected = errors.New("erp: request rejected")
	// ErrBadResponse: a 2xx whose body is not what the API promises.
	ErrBadResponse = errors.New("erp: bad response")
)

// StatusError is an ERP answer other than 2xx.
type StatusError struct {
	Op      string // e.g. "get order"
	Status  int    // HTTP status
	Message string // the ERP's "error" field, if any
	class   error
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("erp: %s: HTTP %d: %s", e.Op, e.Status, e.Message)
	}
	return fmt.Sprintf("erp: %s: HTTP %d", e.Op, e.Status)
}

// Unwrap returns the class (ErrNotFound, ErrUnavailable, ...).
func (e *StatusError) Unwrap() error { return e.class }

// classify maps an HTTP status to a failure class: the one table that decides
// retry (ErrUnavailable) against answer-the-user (the others).
func classify(status int) error {
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return ErrUnavailable
	default:
		return ErrRejected
	}
}

// maxBody bounds what is read from the ERP: its answers are small.
const maxBody = 1 << 20

// Client calls the ERP's HTTP API. Safe for concurrent use.
type Client struct {
	r *resty.Client
}

// NewClient returns a client for cfg.BaseURL with cfg.Timeout per call and
// no retries of its own: the connector runner retries whole events.
func NewClient(cfg Config) *Client {
	cfg = cfg.WithDefaults()
	r := resty.New().
		SetBaseURL(cfg.BaseURL).
		SetTimeout(cfg.Timeout).
		SetHeader("Accept", "application/json").
		SetHeader("User-Agent", "wxhub-erp-connector").
		SetResponseBodyLimit(maxBody)
	if cfg.Token != "" {
		r.SetAuthToken(cfg.Token)
	}
	// One ERP host, called from every partition at once: keep as many idle
	// connections as there can be calls (resty keeps GOMAXPROCS+1), so that
	// a burst does not end in dialling a new connection per call.
	if tr, ok := r.GetClient().Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, 64)
		tr.MaxIdleConns = max(tr.MaxIdleConns, 64)
	}
	return &Client{r: r}
}

// errorBody is the ERP's error answer.
type errorBody struct {
	Error    string    `json:"error"`
	Approval *Approval `json:"approval,omitempty"` // 409 on a decision: the record as it stands
}

// do runs one call; out is filled from a 2xx answer, and from a 409 answer
// when it carries an approval (what a conflicting decision returns).
func (c *Client) do(ctx context.Context, op, method, path string, params map[string]string, body, out any) error {
	req := c.r.R().SetContext(ctx).SetPathParams(params)
	if body != nil {
		req.SetBody(body)
	}
	resp, err := req.Execute(method, path)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("erp: %s: %w", op, ctx.Err())
		}
		// Timeouts, refused connections, resets: the ERP is not there now.
		return fmt.Errorf("erp: %s: %w: %w", op, ErrUnavailable, err)
	}
	raw := resp.Body()
	if resp.IsSuccess() {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("erp: %s: %w: %w", op, ErrBadResponse, err)
		}
		return nil
	}
	var eb errorBody
	_ = json.Unmarshal(raw, &eb)
	se := &StatusError{Op: op, Status: resp.StatusCode(), Message: eb.Error, class: classify(resp.StatusCode())}
	if se.class == ErrConflict && eb.Approval != nil {
		if a, ok := out.(*Approval); ok {
			*a = *eb.Approval
		}
	}
	return se
}

// Order returns order id.
func (c *Client) Order(ctx context.Context, id string) (Order, error) {
	var o Order
	err := c.do(ctx, "get order", http.MethodGet, "/api/orders/{id}", map[string]string{"id": id}, nil, &o)
	return o, err
}

// Stock returns the stock of sku.
func (c *Client) Stock(ctx context.Context, sku string) (Stock, error) {
	var s Stock
	err := c.do(ctx, "get stock", http.MethodGet, "/api/stock/{sku}", map[string]string{"sku": sku}, nil, &s)
	return s, err
}

// Approval returns approval id.
func (c *Client) Approval(ctx context.Context, id string) (Approval, error) {
	var a Approval
	err := c.do(ctx, "get approval", http.MethodGet, "/api/approvals/{id}", map[string]string{"id": id}, nil, &a)
	return a, err
}

// Decide records a decision on approval id and returns the approval as it
// now stands. The ERP makes it idempotent: the same decision again is a
// success. On ErrConflict (decided the other way) the returned Approval is
// the record as it stands, when the ERP sent it.
func (c *Client) Decide(ctx context.Context, id string, d DecisionRequest) (Approval, error) {
	var a Approval
	err := c.do(ctx, "decide approval", http.MethodPost, "/api/approvals/{id}/decision", map[string]string{"id": id}, d, &a)
	return a, err
}
