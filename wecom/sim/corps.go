package sim

// corpOf is the corp id of app: its own when the simulator plays several
// corps, else Config.CorpID.
func (s *Server) corpOf(a *App) string {
	if a.CorpID != "" {
		return a.CorpID
	}
	return s.cfg.CorpID
}

// knownCorp reports whether id is one of the simulated corps.
func (s *Server) knownCorp(id string) bool {
	if id == s.cfg.CorpID {
		return true
	}
	for _, a := range s.appsByName {
		if a.CorpID == id {
			return true
		}
	}
	return false
}
