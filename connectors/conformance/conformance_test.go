package conformance_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/conformance"
	"github.com/wxhub/wxhub/connectors/echo"
	"github.com/wxhub/wxhub/schemas"
)

// auditLog stands for a legacy system: every echo is first recorded there, so
// the kit can make the echo connector's legacy call time out or fail.
func auditLog() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
}

// audited calls the audit log before the echo handler; a failing call is a
// retryable error.
func audited(url string) connectors.Middleware {
	client := resty.New().SetBaseURL(url).SetTimeout(2 * time.Second)
	return func(next connectors.Handler) connectors.Handler {
		return connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
			resp, err := client.R().SetContext(ctx).SetBody(map[string]string{"event": ev.ID}).Post("/audit")
			if err != nil {
				return nil, fmt.Errorf("audit log: %w", err)
			}
			if resp.IsError() {
				return nil, fmt.Errorf("audit log: HTTP %d", resp.StatusCode())
			}
			return next.Handle(ctx, ev)
		})
	}
}

// The kit's self-test: the echo connector (with an audit-log call as its
// legacy system) passes every case.
func TestEchoConformance(t *testing.T) {
	legacy := conformance.NewLegacyServer(t, auditLog())
	conformance.Run(t, conformance.Connector{
		Name:         echo.Name,
		Start:        conformance.GoHandler(connectors.Chain(echo.Handler(), audited(legacy.URL()))),
		Samples:      []conformance.Sample{{Name: "text", Event: conformance.Text("hello 你好"), Want: conformance.ReplyContains("echo: hello 你好")}},
		Legacy:       legacy,
		LegacySample: conformance.Sample{Name: "audited", Event: conformance.Text("订单 1001"), Want: conformance.ReplyContains("echo: 订单 1001")},
	})
}
