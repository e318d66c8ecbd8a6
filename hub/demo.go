package hub

import (
	"path/filepath"
	"slices"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/identity/oidc"
	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// Demo credentials: printed in the demo's banner, never to be used outside it.
const (
	DemoAPIKey         = "demo-erp-key"         // the push-API key of the sample legacy systems
	DemoDashboardToken = "demo-dashboard-token" // the dashboard's admin token
	DemoLoginClient    = "erp-login"            // the sample login page's client (assertion audience)
	DemoLoginPath      = "/demo/login/"         // where the demo mounts the sample login page
)

// DemoConfig is the hub's config for the demo corp of the simulator s: its
// apps and accounts, the demo's API key and dashboard token, console logs.
func DemoConfig(s sim.Config, dataDir, listen string) *config.Config {
	c := &config.Config{
		NATS:    bus.Config{DataDir: filepath.Join(dataDir, "nats")},
		Gateway: gateway.Config{Listen: listen},
		WeCom:   wecom.Config{APIBase: "http://" + s.Listen, CorpID: s.CorpID},
		MP:      wecom.MPConfig{APIBase: "http://" + s.Listen}, // the simulator serves the Official Account API too
		API:     gateway.APIConfig{Keys: []gateway.APIKey{{Name: "erp", Key: DemoAPIKey, Apps: []string{"*"}}}},
		Log:     config.Log{Level: "info", Format: "console"},
	}
	c.Dashboard.AdminToken = DemoDashboardToken
	// Inbound media events carry absolute hub URLs; WeCom voice gets a transcript
	// from the simulator's stand-in speech-to-text service.
	c.Gateway.PublicURL = "http://" + listen
	c.Router.Transcriber = transcribe.Config{BaseURL: "http://" + s.Listen, Model: "sim-whisper"}
	// The sample login page (/demo/login/) logs users in to "erp-login".
	c.Auth.Clients = []gateway.AuthClient{{Name: DemoLoginClient, Title: "ERP 系统", Keys: []string{"erp"},
		RedirectURLs: []string{"http://" + listen + DemoLoginPath}}}
	for _, a := range s.Apps {
		app := wecom.AppConfig{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret, Token: a.Token, EncodingAESKey: a.EncodingAESKey}
		if a.CorpID == "" || a.CorpID == s.CorpID {
			c.WeCom.Apps = append(c.WeCom.Apps, app)
			continue
		}
		// An app of another simulated corp (sim.AddDemoDealer): wecom.corps[].
		i := slices.IndexFunc(c.WeCom.Corps, func(cc wecom.CorpConfig) bool { return cc.CorpID == a.CorpID })
		if i < 0 {
			c.WeCom.Corps = append(c.WeCom.Corps, wecom.CorpConfig{CorpID: a.CorpID})
			i = len(c.WeCom.Corps) - 1
		}
		c.WeCom.Corps[i].Apps = append(c.WeCom.Corps[i].Apps, app)
	}
	for _, a := range s.Accounts {
		c.MP.Accounts = append(c.MP.Accounts, wecom.AccountConfig{Name: a.Name, AppID: a.AppID, Secret: a.Secret,
			Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
	c.Defaults()
	return c
}

// The demo's OIDC sample client (identity/oidcdemo), mounted on the gateway.
const (
	DemoOIDCPath   = "/demo/oidc/"
	DemoOIDCClient = "demo-web"
	DemoOIDCSecret = "demo-oidc-secret-0123456789"
)

// DemoIdentity turns on the directory, the step-up PIN and the OIDC provider
// for the demo corp: the sample web app at DemoOIDCPath logs in through
// wxhub; simURL is the simulator (WeCom's OAuth page), gatewayURL the hub.
func DemoIdentity(c *config.Config, simURL, gatewayURL string) {
	c.Auth.OAuthAuthorizeURL = simURL + "/connect/oauth2/authorize"
	c.Directory = &directory.Config{App: "helpdesk"}
	c.PIN = &pin.Config{App: "helpdesk", AdminKeys: []string{"erp"}}
	c.OIDC = &oidc.Config{Issuer: gatewayURL, App: "helpdesk", Clients: []oidc.Client{{
		ID: DemoOIDCClient, Secret: DemoOIDCSecret, Name: "示例系统",
		RedirectURIs: []string{gatewayURL + DemoOIDCPath + "callback"},
	}}}
}
