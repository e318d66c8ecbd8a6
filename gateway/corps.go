package gateway

import (
	"net/http"
	"slices"
)

// corpOf is the corp id of the WeCom app named app (the top-level corp for
// an unknown name).
func (g *Gateway) corpOf(app string) string {
	a, _ := g.cfg.WeCom.App(app)
	return g.cfg.WeCom.CorpOf(a)
}

// KeyCorps authenticates r's API key and returns the corps of its WeCom apps
// in config order, without repeats: nil for a key of every app ("*"), empty
// for a key of none (Official Accounts only). The directory's read API reads
// the first by default and only these.
func (g *Gateway) KeyCorps(r *http.Request) (corps []string, ok bool) {
	k, ok := g.authenticate(r)
	if !ok {
		return nil, false
	}
	if slices.Contains(k.Apps, "*") {
		return nil, true
	}
	corps = []string{}
	for _, name := range k.Apps {
		if a, found := g.cfg.WeCom.App(name); found && !slices.Contains(corps, g.cfg.WeCom.CorpOf(a)) {
			corps = append(corps, g.cfg.WeCom.CorpOf(a))
		}
	}
	return corps, true
}
