package httpconn_test

import (
	"fmt"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/connectors/conformance"
	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/connectors/http/ticketdemo"
)

// TestConformance runs the connector kit against an http connector instance
// configured as in the demo, with the sample ticketing service behind the
// kit's failure switch as its legacy system.
func TestConformance(t *testing.T) {
	legacy := conformance.NewLegacyServer(t, ticketdemo.New(ticketdemo.Config{Token: ticketdemo.DemoToken}))
	conformance.Run(t, conformance.Connector{
		Name: "tickets",
		Start: func(t *testing.T, env conformance.Env) func() {
			var doc struct{ Tickets yamlNode }
			if err := node(t, ticketdemo.Snippet(legacy.URL())).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			n := stripType(t, doc.Tickets.n)
			cfg, err := httpconn.Decode(n)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Timeout = 2e9
			cfg.MaxDeliver = env.MaxDeliver
			c, err := httpconn.New("tickets", cfg, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			return conformance.GoHandler(c)(t, env)
		},
		Samples: []conformance.Sample{
			{Name: "ticket", Event: conformance.Text("工单 77"), Want: conformance.ReplyContains("打印机卡纸", "lisi")},
			{Name: "unknown ticket", Event: conformance.Text("工单 5"), Want: conformance.ReplyContains("没有工单 5")},
		},
		Legacy:       legacy,
		LegacySample: conformance.Sample{Event: conformance.Text("工单 1001"), Want: conformance.ReplyContains(fmt.Sprint(1001))},
	})
}
