package e2e_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/http/ticketdemo"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The demo's ticketing system answers "工单 77" through the http connector,
// configured in YAML only.
func TestE2EHTTPConnectorAnswersFromTheTicketingService(t *testing.T) {
	tickets := ticketdemo.New(ticketdemo.Config{Token: ticketdemo.DemoToken})
	if err := tickets.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tickets.Close() })
	e := startE2E(t, withConfig(func(c *config.Config) {
		if err := hub.AddSections(c, ticketdemo.Snippet(tickets.URL())); err != nil {
			t.Fatal(err)
		}
	}))
	ctx := waitCtx(t, 30*time.Second)
	if _, err := e.sim.Say(ctx, "helpdesk", "zhangsan", "工单 77"); err != nil {
		t.Fatal(err)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && strings.HasPrefix(m.Content, "工单 77") })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Content, "状态") {
		t.Errorf("reply %q", m.Content)
	}
	if _, err := e.sim.Say(ctx, "helpdesk", "lisi", "工单 5"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "lisi" && m.Content == "没有工单 5" }); err != nil {
		t.Fatal(err)
	}
}
