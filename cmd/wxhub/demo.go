package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/connectors/fileshare"
	"github.com/wxhub/wxhub/connectors/http/ticketdemo"
	"github.com/wxhub/wxhub/connectors/scanlogin/loginpage"
	"github.com/wxhub/wxhub/gateway/hooks"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/identity/oidcdemo"
	"github.com/wxhub/wxhub/wecom/sim"
)

// demoCmd runs the whole hub with the WeCom simulator and the sample legacy
// systems in one process, and prints what to try.
func demoCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dataDir := fs.String("data", "./data", "where the embedded NATS keeps its streams")
	listen := fs.String("listen", "127.0.0.1:8080", "the gateway's address")
	simListen := fs.String("sim-listen", sim.DefaultListen, "the WeCom simulator's address")
	erpListen := fs.String("erp-listen", "127.0.0.1:8081", "the sample ERP's address")
	ticketsListen := fs.String("tickets-listen", ticketdemo.DefaultListen, "the sample ticketing service's address (answered through the http connector)")
	natsPort := fs.Int("nats-port", 4222, "the embedded NATS server's port (external connectors connect to it)")
	extraPath := fs.String("config", "", "your additions to the demo (router.rules, nats.users, wecom.apps, connectors), in wxhub.yaml's shape")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var extra *hub.DemoExtra
	if *extraPath != "" {
		var err error
		if extra, err = hub.LoadDemoExtra(*extraPath, os.LookupEnv); err != nil {
			return err
		}
	}
	log, err := newLogger("info", "console")
	if err != nil {
		return err
	}
	defer log.Sync()
	scfg := sim.DemoConfig()
	scfg.Listen = *simListen
	scfg.GatewayURL = "http://" + *listen
	if extra != nil {
		extra.ApplySim(&scfg)
	}
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
	erpSrv := erpdemo.New(erpdemo.Config{HubURL: "http://" + *listen, HubAPIKey: hub.DemoAPIKey, Logger: log})
	if err := erpSrv.Start(*erpListen); err != nil {
		return fmt.Errorf("sample ERP: %w", err)
	}
	defer erpSrv.Close()

	// The sample ticketing service: an HTTP system the hub answers from with no Go code.
	tickets := ticketdemo.New(ticketdemo.Config{Token: ticketdemo.DemoToken})
	if err := tickets.Start(*ticketsListen); err != nil {
		return fmt.Errorf("sample ticketing service: %w", err)
	}
	defer tickets.Close()

	cfg := hub.DemoConfig(scfg, *dataDir, *listen)
	cfg.NATS.Port = *natsPort
	cfg.Connectors = map[string]yaml.Node{erp.Name: hub.Section(erp.Config{BaseURL: erpSrv.URL()})}
	if err := hub.AddSections(cfg, ticketdemo.Snippet(tickets.URL())); err != nil {
		return err
	}
	cfg.Hooks = hooks.Examples()

	// The file share: sample shares written at every start.
	shares := filepath.Join(*dataDir, "fileshare")
	if err := fileshare.WriteSamples(shares, time.Now()); err != nil {
		return fmt.Errorf("sample shares: %w", err)
	}
	if err := hub.AddSections(cfg, fileshare.DemoSection(shares, "http://"+*listen, "http://"+scfg.Listen)); err != nil {
		return err
	}
	// Identity: the directory, the PIN, and wxhub as an OIDC provider for a sample web app.
	hub.DemoIdentity(cfg, "http://"+scfg.Listen, "http://"+*listen)
	oidcApp, err := oidcdemo.New(oidcdemo.Config{Issuer: "http://" + *listen, ClientID: hub.DemoOIDCClient, ClientSecret: hub.DemoOIDCSecret,
		BaseURL: "http://" + *listen + hub.DemoOIDCPath, Logger: log.Named("oidcdemo")})
	if err != nil {
		return err
	}
	if extra != nil {
		if err := extra.Apply(cfg); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	setup, err := hub.Configure(cfg, hub.Builtins)
	if err != nil {
		return err
	}
	// The sample legacy login page: scan to log in instead of a USB key.
	login, err := loginpage.New(loginpage.Config{HubURL: "http://" + *listen, APIKey: hub.DemoAPIKey, Client: hub.DemoLoginClient,
		PublicURL: "http://" + *listen + hub.DemoLoginPath, Logger: log.Named("loginpage")})
	if err != nil {
		return err
	}
	defer hub.KeepGCHeapFloor(cfg, log)()
	return hub.Run(ctx, setup, log, hub.Options{
		Handlers: map[string]http.Handler{
			hub.DemoLoginPath:  http.StripPrefix(hub.DemoLoginPath[:len(hub.DemoLoginPath)-1], login),
			hub.DemoOIDCPath:   http.StripPrefix(hub.DemoOIDCPath[:len(hub.DemoOIDCPath)-1], oidcApp),
			fileshare.LinkPath: fileshare.Links,
		},
		Ready: func(h *hub.Hub) {
			printDemoBanner(h.Addr, scfg.Listen, erpSrv.URL(), tickets.URL())
			printExternalConnectors(os.Stderr, setup, h.Bus.ClientURL())
		}})
}

func printDemoBanner(gatewayAddr, simAddr, erpURL, ticketsURL string) {
	simFlag := ""
	if simAddr != sim.DefaultListen {
		simFlag = " --sim http://" + simAddr
	}
	fmt.Fprintf(os.Stderr, `
  wxhub demo is running
    gateway        http://%[1]s   (callbacks: /wecom/helpdesk/callback, push API: /api/v1/messages)
    WeCom simulator http://%[2]s   (what the hub sent: /sim/sent)
    sample ERP     %[5]s   (orders 1001-1005, stock A-100..., approvals)
    tickets        %[7]s   (a ticketing system answered by the http connector: docs/connectors/http.md)
    dashboard      http://%[1]s/dashboard/   (admin token: %[6]s)
    login page     http://%[1]s/demo/login/   (scan to log in: a sample legacy login page)
    OIDC client    http://%[1]s/demo/oidc/    (a sample web app logging in through wxhub as OpenID Connect provider)
    PIN page       http://%[1]s/pin/          (set the step-up PIN; opened from the WeCom app)

  Try, in another terminal:
    ./bin/wxhub sim say%[3]s zhangsan "你好"                 # unmatched: the help text comes back
    ./bin/wxhub sim say%[3]s zhangsan "订单 1001"            # the ERP connector answers from the sample ERP
    ./bin/wxhub sim say%[3]s zhangsan "echo 你好"            # the echo connector
    ./bin/wxhub sim say%[3]s zhangsan "工单 77"              # the http connector asks the ticketing service
    ./bin/wxhub sim say%[3]s zhangsan "销售周报"             # the file share sends the newest weekly report (try "找 xszb", "合同")
    curl -s -H 'Authorization: Bearer %[4]s' http://%[1]s/api/v1/directory/users/zhangsan   # the directory
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

`, gatewayAddr, simAddr, simFlag, hub.DemoAPIKey, erpURL, hub.DemoDashboardToken, ticketsURL)
}

// printExternalConnectors tells how each routing target that is not built in
// connects: the NATS URL, its login and the subjects it uses.
func printExternalConnectors(w io.Writer, setup *hub.Setup, natsURL string) {
	ext := setup.External()
	if len(ext) == 0 {
		return
	}
	parts := setup.Config.NATS.Partitions
	fmt.Fprintf(w, "  External connectors (your processes) connect to NATS %s:\n", natsURL)
	for _, c := range ext {
		fmt.Fprintf(w, "    %s:  %s\n", c.Name, strings.Join(hub.ConnectorEnv(natsURL, parts, c.Name, c.User), " "))
		fmt.Fprintf(w, "      consumes wxhub.route.%[1]s.<0..%[2]d> (stream WXHUB_ROUTE, durable consumers wxhub_%[1]s_<p>), replies to wxhub.out.<app>\n",
			c.Name, parts-1)
		if c.User == "" && len(setup.Config.NATS.Users) > 0 {
			fmt.Fprintf(w, "      no nats.users entry with connector: %s: it cannot log in\n", c.Name)
		}
	}
	fmt.Fprintln(w, "  (docs/connectors.md; `wxhub new connector NAME` scaffolds one)")
	fmt.Fprintln(w)
}
