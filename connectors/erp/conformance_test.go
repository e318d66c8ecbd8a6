package erp_test

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/connectors/conformance"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
)

// TestConformance runs the connector kit against the ERP connector, with the
// sample ERP behind the kit's failure switch as its legacy system.
func TestConformance(t *testing.T) {
	legacy := conformance.NewLegacyServer(t, erpdemo.New(erpdemo.Config{}))
	conformance.Run(t, conformance.Connector{
		Name: erp.Name,
		Start: func(t *testing.T, env conformance.Env) func() {
			c, err := erp.New(erp.Config{BaseURL: legacy.URL(), Timeout: 2 * time.Second, MaxDeliver: env.MaxDeliver}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			return conformance.GoHandler(c)(t, env)
		},
		Samples: []conformance.Sample{
			{Name: "order", Event: conformance.Text("订单 1001"), Want: conformance.ReplyContains("1001")},
			{Name: "stock", Event: conformance.Text("库存 A-100"), Want: conformance.ReplyContains("A-100")},
			{Name: "unknown order", Event: conformance.Text("订单 999999"), Want: conformance.ReplyContains("999999")},
		},
		Legacy:       legacy,
		LegacySample: conformance.Sample{Event: conformance.Text("order 1002"), Want: conformance.ReplyContains("1002")},
	})
}
