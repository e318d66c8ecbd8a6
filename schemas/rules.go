package schemas

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// RouteRule sends matching events to connectors.
type RouteRule struct {
	Name        string     `yaml:"name"`        // for logs; default "rules[i]"
	Description string     `yaml:"description"` // one line in the help text, e.g. "订单 <号码>: 查询订单"
	Match       RouteMatch `yaml:"match"`
	To          Strings    `yaml:"to"`       // connector names; at least one
	Continue    bool       `yaml:"continue"` // keep matching after this rule
	// Tap: the targets get a copy and matching goes on as if this rule had
	// not matched (an event only a tap saw still goes to the default). For
	// observers such as event webhooks.
	Tap bool `yaml:"tap"`
}

// RouteMatch: every field that is set must match (AND); a list matches if any of its
// values does (OR). An empty Match matches everything.
type RouteMatch struct {
	Channel  Strings `yaml:"channel"`   // wecom, mp
	App      Strings `yaml:"app"`       // app or account name in the config
	Corp     Strings `yaml:"corp"`      // WeCom corp id (wecom.corp_id or wecom.corps[].corp_id)
	MsgType  Strings `yaml:"msg_type"`  // text, image, voice, location, link, event, ... (case-insensitive)
	Event    Strings `yaml:"event"`     // subscribe, click, scancode_waitmsg, template_card_event, ... (case-insensitive)
	EventKey Strings `yaml:"event_key"` // exact, or a prefix when it ends with '*'
	TaskID   Strings `yaml:"task_id"`   // template card task id: exact, or a prefix when it ends with '*'
	Content  string  `yaml:"content"`   // Go regexp on the text (or a voice message's transcript)
	Keywords Strings `yaml:"keywords"`  // the text contains any of them (case-insensitive)
	Users    Strings `yaml:"users"`     // userid / openid
}

// Strings is a YAML list that also accepts a single scalar: `to: erp` = `to: [erp]`.
type Strings []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *Strings) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Strings{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}
