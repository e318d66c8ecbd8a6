package router

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrConfig is matched (errors.Is) by every rule validation error.
var ErrConfig = errors.New("router: invalid config")

// FieldError names the config key at fault: "router.rules[3].match.content: invalid regex ...".
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string        { return e.Field + ": " + e.Problem }
func (e *FieldError) Is(target error) bool { return target == ErrConfig }

// DefaultConnector receives events no rule matches.
const DefaultConnector = "help"

// Config is the `router:` section of the main config.
type Config struct {
	// Rules are tried in order; the first that matches decides, unless it says
	// continue: true (then its targets are kept and the next rules are tried too).
	Rules []Rule `yaml:"rules"`
	// Default connector for events no rule matches. Default "help".
	Default string `yaml:"default"`
	// HelpText heads the help connector's answer; the rules' descriptions follow.
	HelpText string `yaml:"help_text"`
	// Partitions of each connector's route subjects. 0: the bus's (nats.partitions).
	Partitions int `yaml:"partitions"`
}

// Rule sends matching events to connectors.
type Rule struct {
	Name        string  `yaml:"name"`        // for logs; default "rules[i]"
	Description string  `yaml:"description"` // one line in the help text, e.g. "订单 <号码>: 查询订单"
	Match       Match   `yaml:"match"`
	To          Strings `yaml:"to"`       // connector names; at least one
	Continue    bool    `yaml:"continue"` // keep matching after this rule
}

// Match: every field that is set must match (AND); a list matches if any of its
// values does (OR). An empty Match matches everything.
type Match struct {
	Channel  Strings `yaml:"channel"`   // wecom, mp
	App      Strings `yaml:"app"`       // app or account name in the config
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

var validConnector = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks every rule; the error names the key ("router.rules[3].match.content").
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// Help is the help connector's text: HelpText, then one line per rule that has a description.
func (c Config) Help() string {
	var b strings.Builder
	head := c.HelpText
	if head == "" {
		head = "您好！可以发送以下内容："
	}
	b.WriteString(head)
	for _, r := range c.Rules {
		if r.Description != "" {
			b.WriteString("\n• ")
			b.WriteString(r.Description)
		}
	}
	return b.String()
}
