package router

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/schemas"
)

type compiledRule struct {
	name    string
	rule    Rule
	content *regexp.Regexp
}

// ruleSet is an immutable compiled Config, swapped atomically on reload.
type ruleSet struct {
	cfg   Config
	rules []compiledRule
	tr    transcribe.Transcriber // nil: voice is routed as it came (transcribe.go)
}

func compile(c Config) (*ruleSet, error) {
	if c.Default == "" {
		c.Default = DefaultConnector
	}
	if !validConnector.MatchString(c.Default) {
		return nil, &FieldError{"router.default", fmt.Sprintf("%q is not a connector name ([A-Za-z0-9_-])", c.Default)}
	}
	if c.Partitions < 0 || c.Partitions > 1024 {
		return nil, &FieldError{"router.partitions", fmt.Sprintf("%d, want 0..1024", c.Partitions)}
	}
	rs := &ruleSet{cfg: c}
	var err error
	if rs.tr, err = newTranscriber(c.Transcriber); err != nil {
		return nil, err
	}
	for i, r := range c.Rules {
		key := fmt.Sprintf("router.rules[%d]", i)
		cr := compiledRule{name: r.Name, rule: r}
		if cr.name == "" {
			cr.name = fmt.Sprintf("rules[%d]", i)
		}
		if len(r.To) == 0 {
			return nil, &FieldError{key + ".to", "at least one connector is required"}
		}
		for j, to := range r.To {
			if !validConnector.MatchString(to) {
				return nil, &FieldError{fmt.Sprintf("%s.to[%d]", key, j), fmt.Sprintf("%q is not a connector name ([A-Za-z0-9_-])", to)}
			}
		}
		for _, ch := range r.Match.Channel {
			if ch != schemas.ChannelWeCom && ch != schemas.ChannelMP {
				return nil, &FieldError{key + ".match.channel", fmt.Sprintf("%q, want wecom or mp", ch)}
			}
		}
		for j, kw := range r.Match.Keywords {
			if strings.TrimSpace(kw) == "" {
				return nil, &FieldError{fmt.Sprintf("%s.match.keywords[%d]", key, j), "empty keyword matches everything"}
			}
		}
		if r.Match.Content != "" {
			re, err := regexp.Compile(r.Match.Content)
			if err != nil {
				return nil, &FieldError{key + ".match.content", "invalid regex: " + err.Error()}
			}
			cr.content = re
		}
		rs.rules = append(rs.rules, cr)
	}
	return rs, nil
}

// match returns the connectors for ev, in rule order without duplicates, and
// the names of the rules that matched. No match gives the default connector.
func (rs *ruleSet) match(ev *schemas.Event) (to []string, rules []string) {
	to, hits := rs.matchIdx(ev)
	for _, i := range hits {
		rules = append(rules, rs.rules[i].name)
	}
	return to, rules
}

// matchIdx is match with the indexes of the rules that matched.
func (rs *ruleSet) matchIdx(ev *schemas.Event) (to []string, hits []int) {
	var tapped []string
	for i, cr := range rs.rules {
		if !cr.matches(ev) {
			continue
		}
		hits = append(hits, i)
		if cr.rule.Tap {
			tapped = appendNew(tapped, cr.rule.To...)
			continue
		}
		to = appendNew(to, cr.rule.To...)
		if !cr.rule.Continue {
			break
		}
	}
	if len(to) == 0 {
		to = []string{rs.cfg.Default}
	}
	return appendNew(to, tapped...), hits
}

func appendNew(list []string, items ...string) []string {
	for _, t := range items {
		if !slices.Contains(list, t) {
			list = append(list, t)
		}
	}
	return list
}

func (cr *compiledRule) matches(ev *schemas.Event) bool {
	m, d := &cr.rule.Match, &ev.Data
	text := d.Content
	if text == "" {
		text = d.Recognition // voice: the Official Account's transcript
	}
	switch {
	case len(m.Channel) > 0 && !slices.Contains(m.Channel, d.Channel):
		return false
	case len(m.App) > 0 && !slices.Contains(m.App, d.App):
		return false
	case len(m.Corp) > 0 && !slices.Contains(m.Corp, d.Corp):
		return false
	case len(m.MsgType) > 0 && !containsFold(m.MsgType, d.MsgType):
		return false
	case len(m.Event) > 0 && (d.Event == "" || !containsFold(m.Event, d.Event)):
		return false
	case len(m.EventKey) > 0 && !matchesKey(m.EventKey, d.EventKey):
		return false
	case len(m.TaskID) > 0 && !matchesKey(m.TaskID, d.TaskID):
		return false
	case len(m.Users) > 0 && !slices.Contains(m.Users, d.User):
		return false
	case cr.content != nil && (text == "" || !cr.content.MatchString(text)):
		return false
	case len(m.Keywords) > 0 && !containsKeyword(text, m.Keywords):
		return false
	}
	return true
}

func containsFold(list []string, v string) bool {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

func matchesKey(patterns []string, key string) bool {
	if key == "" {
		return false
	}
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(key, prefix) || p == key {
			return true
		}
	}
	return false
}

func containsKeyword(text string, kws []string) bool {
	lt := strings.ToLower(text)
	for _, kw := range kws {
		if strings.Contains(lt, strings.ToLower(kw)) {
			return true
		}
	}
	return false
}
