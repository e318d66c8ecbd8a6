package sender

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/wxhub/wxhub/bus"
)

// CorpLimits are one corp's corp-wide send limits (wecom.corps[]); zero keeps
// Limits.CorpAPIMinute / CorpAPIHour.
type CorpLimits struct {
	CorpAPIMinute int
	CorpAPIHour   int
}

// initCorps fills each WeCom app's corp and, when the apps span several
// corps, each corp's corp-wide rules: a full corp then holds only its own
// messages.
func (s *Sender) initCorps() {
	apps := make([]App, len(s.cfg.Apps)) // never write the caller's slice
	corps := map[string]bool{}
	for i, a := range s.cfg.Apps {
		if !a.mp() {
			a.CorpID = cmp.Or(a.CorpID, s.cfg.CorpID)
			corps[a.CorpID] = true
		}
		apps[i] = a
	}
	s.cfg.Apps = apps
	if len(corps) < 2 && len(s.cfg.CorpLimits) == 0 {
		return
	}
	s.corpRulesBy = map[string][]rule{}
	for id := range corps {
		o := s.cfg.CorpLimits[id]
		m, h := cmp.Or(o.CorpAPIMinute, s.cfg.Limits.CorpAPIMinute), cmp.Or(o.CorpAPIHour, s.cfg.Limits.CorpAPIHour)
		s.corpRulesBy[id] = []rule{
			{Name: "m", Limit: m, Span: time.Minute, Res: time.Second},
			{Name: "h", Limit: h, Span: time.Hour, Res: time.Minute},
		}
	}
}

// corpKey is the ledger key of a corp-wide API limit: "corp.<api>" for the
// top-level corp (Config.CorpID, as before several corps), "corp.<corp>.<api>"
// for another.
func (s *Sender) corpKey(app App, api string) string {
	if app.CorpID == "" || app.CorpID == s.cfg.CorpID {
		return "corp." + api
	}
	return "corp." + bus.SafeKey(app.CorpID) + "." + api
}

// corpRulesOf are the corp-wide rules of app's corp.
func (s *Sender) corpRulesOf(app App) []rule { return s.corpRulesFor(app.CorpID) }

// corpRulesFor are the corp-wide rules of corp: its own (CorpLimits) when the
// apps span several corps or it has an override, else Limits'.
func (s *Sender) corpRulesFor(corp string) []rule {
	if r, ok := s.corpRulesBy[corp]; ok {
		return r
	}
	return s.corpRules
}

// corpIDs are the corps of the WeCom apps, the top-level corp (Config.CorpID)
// first, then by id.
func (s *Sender) corpIDs() []string {
	var ids []string
	for _, a := range s.cfg.Apps {
		if !a.mp() && !slices.Contains(ids, a.CorpID) {
			ids = append(ids, a.CorpID)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == s.cfg.CorpID:
			return -1
		case b == s.cfg.CorpID:
			return 1
		}
		return strings.Compare(a, b)
	})
	return ids
}

// corpOfKey splits a corp-wide ledger key (corpKey) into its corp and API;
// false for a corp no app of this sender is in any more.
func (s *Sender) corpOfKey(key string) (corp, api string, ok bool) {
	rest, found := strings.CutPrefix(key, "corp.")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(rest, ".")
	if i < 0 {
		return s.cfg.CorpID, rest, true // the top-level corp's
	}
	for _, id := range s.corpIDs() {
		if id != s.cfg.CorpID && bus.SafeKey(id) == rest[:i] {
			return id, rest[i+1:], true
		}
	}
	return "", "", false
}
