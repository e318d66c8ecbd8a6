package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/connectors/scanlogin/loginpage"
	"github.com/wxhub/wxhub/wecom/sim"
)

// Demo credentials: printed in the banner, never to be used outside the demo.
const (
	demoAPIKey         = "demo-erp-key"         // the push-API key of the sample legacy systems
	demoDashboardToken = "demo-dashboard-token" // the dashboard's admin token
	demoLoginClient    = "erp-login"            // the sample login page's client (assertion audience)
	demoLoginPath      = "/demo/login/"         // where the demo mounts the sample login page
)

// demoConfig is the hub's config for the demo corp of the simulator.
func demoConfig(s sim.Config, dataDir, listen string) *config.Config {
	c := &config.Config{
		NATS:    bus.Config{DataDir: filepath.Join(dataDir, "nats")},
		Gateway: config.Gateway{Listen: listen},
		WeCom:   config.WeCom{APIBase: "http://" + s.Listen, CorpID: s.CorpID},
		MP:      config.MP{APIBase: "http://" + s.Listen}, // the simulator serves the Official Account API too
		API:     config.API{Keys: []config.APIKey{{Name: "erp", Key: demoAPIKey, Apps: []string{"*"}}}},
		Log:     config.Log{Level: "info", Format: "console"},
	}
	c.Dashboard.AdminToken = demoDashboardToken
	// The sample login page (/demo/login/) logs users in to "erp-login".
	c.Auth.Clients = []config.AuthClient{{Name: demoLoginClient, Title: "ERP 系统", Keys: []string{"erp"},
		RedirectURLs: []string{"http://" + listen + demoLoginPath}}}
	for _, a := range s.Apps {
		c.WeCom.Apps = append(c.WeCom.Apps, config.App{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret,
			Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
	for _, a := range s.Accounts {
		c.MP.Accounts = append(c.MP.Accounts, config.Account{Name: a.Name, AppID: a.AppID, Secret: a.Secret,
			Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
	c.Defaults()
	return c
}

// demoCmd runs the whole hub with the WeCom simulator and the sample legacy
// systems in one process, and prints what to try.
func demoCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dataDir := fs.String("data", "./data", "where the embedded NATS keeps its streams")
	listen := fs.String("listen", "127.0.0.1:8080", "the gateway's address")
	simListen := fs.String("sim-listen", sim.DefaultListen, "the WeCom simulator's address")
	erpListen := fs.String("erp-listen", "127.0.0.1:8081", "the sample ERP's address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger("info", "console")
	if err != nil {
		return err
	}
	defer log.Sync()
	scfg := sim.DemoConfig()
	scfg.Listen = *simListen
	scfg.GatewayURL = "http://" + *listen
	scfg = scfg.WithDefaults()
	simulator, err := sim.New(scfg, sim.WithLogger(log.Named("sim")))
	if err != nil {
		return err
	}
	if err := simulator.Start(scfg.Listen); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer simulator.Close()

	// The sample ERP pushes its approval cards through the hub's push API.
	erpSrv := erpdemo.New(erpdemo.Config{HubURL: "http://" + *listen, HubAPIKey: demoAPIKey, Logger: log})
	if err := erpSrv.Start(*erpListen); err != nil {
		return fmt.Errorf("sample ERP: %w", err)
	}
	defer erpSrv.Close()

	cfg := demoConfig(scfg, *dataDir, *listen)
	cfg.Connectors.ERP = &erp.Config{BaseURL: erpSrv.URL()}
	if err := cfg.Validate(); err != nil {
		return err
	}
	// The sample legacy login page: scan to log in instead of a USB key.
	login, err := loginpage.New(loginpage.Config{HubURL: "http://" + *listen, APIKey: demoAPIKey, Client: demoLoginClient,
		PublicURL: "http://" + *listen + demoLoginPath, Logger: log.Named("loginpage")})
	if err != nil {
		return err
	}
	defer keepGCHeapFloor(cfg, log)()
	return runHub(ctx, cfg, log, hubOptions{
		handlers: map[string]http.Handler{demoLoginPath: http.StripPrefix(demoLoginPath[:len(demoLoginPath)-1], login)},
		ready: func(h *hub) {
			printDemoBanner(h.addr, scfg.Listen, erpSrv.URL())
		}})
}

func printDemoBanner(gatewayAddr, simAddr, erpURL string) {
	simFlag := ""
	if simAddr != sim.DefaultListen {
		simFlag = " --sim http://" + simAddr
	}
	fmt.Fprintf(os.Stderr, `
  wxhub demo is running
    gateway        http://%[1]s   (callbacks: /wecom/helpdesk/callback, push API: /api/v1/messages)
    WeCom simulator http://%[2]s   (what the hub sent: /sim/sent)
    sample ERP     %[5]s   (orders 1001-1005, stock A-100..., approvals)
    dashboard      http://%[1]s/dashboard/   (admin token: %[6]s)
    login page     http://%[1]s/demo/login/   (scan to log in: a sample legacy login page)

  Try, in another terminal:
    ./bin/wxhub sim say%[3]s zhangsan "你好"                 # unmatched: the help text comes back
    ./bin/wxhub sim say%[3]s zhangsan "订单 1001"            # the ERP connector answers from the sample ERP
    ./bin/wxhub sim say%[3]s zhangsan "echo 你好"            # the echo connector
    curl -s -X POST %[5]s/api/approvals -d '{"title":"采购单","amount_cents":120000,"requester":"lisi","approvers":["zhangsan","wangwu"]}'
                                                          # the ERP pushes an approval card to zhangsan
    ./bin/wxhub sim say%[3]s lisi "免打扰 22:00-08:00"       # quiet hours for lisi
    ./bin/wxhub sim sent%[3]s                                # every message the hub sent
    ./bin/wxhub sim event%[3]s --key login --scan "wxhub-login:<id>" zhangsan scancode_waitmsg
    ./bin/wxhub sim event%[3]s --key confirm --task "wxhub-login-<id>" zhangsan template_card_event
                                                          # zhangsan scans the login page's QR code (<id>: the page's
                                                          # data-id) and confirms on the card: docs/identity.md
    curl -s -H 'Authorization: Bearer %[4]s' \
      -d '{"app":"helpdesk","touser":"zhangsan","msgtype":"text","text":{"content":"审批已通过"}}' \
      http://%[1]s/api/v1/messages                          # a legacy system pushes a message

  Ctrl-C stops the hub; its queues stay in ./data.

`, gatewayAddr, simAddr, simFlag, demoAPIKey, erpURL, demoDashboardToken)
}
