package gateway

// corpOf is the corp id of the WeCom app named app (the top-level corp for
// an unknown name).
func (g *Gateway) corpOf(app string) string {
	a, _ := g.cfg.WeCom.App(app)
	return g.cfg.WeCom.CorpOf(a)
}
