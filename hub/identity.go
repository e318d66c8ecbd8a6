package hub

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/identity/oidc"
	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/oauth"
)

// startIdentity runs, in the gateway's process, the company directory (its
// store, sync and read API), the step-up PIN pages and the OIDC provider,
// when configured; they use the gateway's shared WeCom tokens.
func startIdentity(ctx context.Context, r *run, gw *gateway.Gateway, store *directory.Store) error {
	cfg := r.setup.Config
	if cfg.Directory == nil && cfg.PIN == nil && cfg.OIDC == nil {
		return nil
	}
	kv := func(name string) (jetstream.KeyValue, error) { return r.bus.KV(ctx, name) }
	client := wecom.NewClient(cfg.WeCom.APIBase)
	tokens := oauth.TokenSource(gw.AppToken)
	login := func(app string) oauth.Login {
		a, _ := cfg.WeCom.App(app) // checked by config validation
		return oauth.Login{AuthorizeURL: cfg.GatewayConfig().Auth.OAuthAuthorizeURL, WebLoginURL: cfg.GatewayConfig().Auth.SSOLoginURL, CorpID: cfg.WeCom.CorpOf(a),
			AgentID: a.AgentID, App: app, Token: tokens, Client: client}
	}

	var claims func(context.Context, string) (map[string]any, error)
	if dc := cfg.Directory; dc != nil && store != nil {
		dkv, err := kv(bus.BucketDirectory)
		if err != nil {
			return err
		}
		corps, err := dc.Corps(cfg.WeCom)
		if err != nil {
			return err
		}
		for _, corp := range corps { // one full sync and change_contact handling per corp
			syncer, err := directory.NewSyncer(dc.WithDefaults(), corp, dkv, client, directory.TokenSource(tokens), r.log.Named("directory"))
			if err != nil {
				return err
			}
			r.group.Go(func() error { return syncer.Run(ctx) })
		}
		var first string
		if ids := cfg.WeCom.CorpIDs(); len(ids) > 0 {
			first = ids[0]
		}
		gw.Handle("/api/v1/directory/", store.Handler(func(req *http.Request) directory.Access { return directoryAccess(gw, first, req) }))
		if oc := cfg.OIDC; oc != nil {
			a, _ := cfg.WeCom.App(oc.App)
			corp := cfg.WeCom.CorpOf(a) // the OIDC login app's corp: its members log in
			claims = func(ctx context.Context, user string) (map[string]any, error) { return store.Claims(ctx, corp, user) }
		}
	}

	var pins *pin.Store
	if pc := cfg.PIN; pc != nil {
		pkv, err := kv(bus.BucketPIN)
		if err != nil {
			return err
		}
		pins, err = pin.NewStore(pkv, *pc, pin.WithLogger(r.log.Named("pin")), pin.WithNotifier(pin.BusNotifier(r.bus, pc.App)))
		if err != nil {
			return err
		}
		sessions, err := kv(bus.BucketOIDC)
		if err != nil {
			return err
		}
		challenges, err := kv(bus.BucketAuth)
		if err != nil {
			return err
		}
		pages := pins.Handler(pin.PagesDeps{Login: login(pc.App), Sessions: sessions, PublicURL: cfg.GatewayConfig().Auth.PublicURL,
			Challenges: challenges, Logger: r.log.Named("pin"),
			AdminAuthorize: func(req *http.Request) bool { return len(pc.AdminKeys) > 0 && gw.Authorize(req, pc.AdminKeys...) }})
		gw.Handle("/pin/", pages)
		gw.Handle("POST /api/v1/pin/reset", pages)
	}

	if oc := cfg.OIDC; oc != nil {
		keys, err := kv(bus.BucketOIDCKeys)
		if err != nil {
			return err
		}
		store, err := kv(bus.BucketOIDC)
		if err != nil {
			return err
		}
		challenges, err := kv(bus.BucketAuth)
		if err != nil {
			return err
		}
		p, err := oidc.New(*oc, oidc.Deps{Keys: keys, Store: store, Challenges: challenges, Login: login(oc.App),
			PIN: pins, Claims: claims, Logger: r.log.Named("oidc")})
		if err != nil {
			return err
		}
		if err := p.EnsureKey(ctx); err != nil {
			return fmt.Errorf("oidc: %w", err)
		}
		r.group.Go(func() error { return p.Run(ctx) })
		gw.Handle("/.well-known/openid-configuration", p)
		gw.Handle("/oidc/", p)
	}
	return nil
}

// directoryAccess is what the API key of req may read of the directory: by
// default the corp of its first WeCom app (the first corp for a key of every
// app), and only the corps of its apps.
func directoryAccess(gw *gateway.Gateway, first string, req *http.Request) directory.Access {
	corps, ok := gw.KeyCorps(req)
	switch {
	case !ok:
		return directory.Access{}
	case corps == nil:
		return directory.Access{OK: true}
	case len(corps) == 0: // Official Accounts only: the first corp, as before several corps
		return directory.Access{OK: true, May: func(c string) bool { return c == first }}
	}
	return directory.Access{OK: true, Default: corps[0], May: func(c string) bool { return slices.Contains(corps, c) }}
}

// startDirectoryStore opens the company directory's store when the directory
// is configured: the gateway expands sends to departments and tags with it.
func startDirectoryStore(ctx context.Context, r *run) (*directory.Store, error) {
	if r.setup.Config.Directory == nil {
		return nil, nil
	}
	kv, err := r.bus.KV(ctx, bus.BucketDirectory)
	if err != nil {
		return nil, err
	}
	store := directory.NewStore(kv, r.log.Named("directory"), directory.WithCorps(r.setup.Config.WeCom.CorpIDs()...))
	if err := store.Start(ctx); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	return store, nil
}
