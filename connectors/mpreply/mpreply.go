// Package mpreply gives each Official Account its own answers: a welcome to a
// new follower, a default reply to a message no rule matched, and answers to
// menu clicks (CLICK event keys) that no rule routed. Customers never get the
// employees' help text: the connector's fallback rule takes every Official
// Account event the configured rules left, before the router's default.
package mpreply

import (
	"context"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name in routing rules.
const Name = "mpreply"

// Defaults for an account without a section of its own.
const (
	DefaultWelcome = "感谢关注！有任何问题，直接给我们发消息即可。"
	DefaultReply   = "您的消息已收到，我们会尽快回复您。"
)

// Account is what one Official Account answers.
type Account struct {
	// Welcome answers a follow (subscribe). Default DefaultWelcome; "-" for none.
	Welcome string `yaml:"welcome"`
	// Reply answers a message (text, voice, image, ...) no rule matched.
	// Default DefaultReply; "-" for none.
	Reply string `yaml:"reply"`
	// Menu answers a menu click by its event key (the CLICK button's key) when
	// no rule routed it. A key not listed gets no answer.
	Menu map[string]string `yaml:"menu"`
}

// Config is the connectors.mpreply section.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
	// Accounts by name (mp.accounts[].name). An account not listed gets the defaults.
	Accounts map[string]Account `yaml:"accounts"`
}

// Validate names the first bad key.
func (c Config) Validate() error {
	if err := c.RunnerConfig.Validate(); err != nil {
		return err
	}
	for name, a := range c.Accounts {
		for k, v := range a.Menu {
			if k == "" || strings.TrimSpace(v) == "" {
				return fmt.Errorf("accounts.%s.menu.%s: needs a key and a non-empty answer", name, k)
			}
		}
	}
	return nil
}

func pick(v, def string) string {
	switch v {
	case "":
		return def
	case "-":
		return ""
	}
	return v
}

// Handler answers Official Account events from cfg; other events get nothing.
func Handler(cfg Config) connectors.Handler {
	return connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		d := ev.Data
		if d.Channel != schemas.ChannelMP || d.User == "" {
			return nil, nil
		}
		a := cfg.Accounts[d.App]
		var text string
		if strings.EqualFold(d.MsgType, "event") {
			switch strings.ToLower(d.Event) {
			case "subscribe":
				text = pick(a.Welcome, DefaultWelcome)
			case "click":
				text = a.Menu[d.EventKey]
			}
		} else {
			text = pick(a.Reply, DefaultReply)
		}
		if text == "" {
			return nil, nil
		}
		return []connectors.Reply{connectors.Text(d.User, text)}, nil
	})
}

// Builtin registers mpreply with the hub: on by default, routed every Official
// Account event the configured rules did not take.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "answers Official Account customers with the account's own welcome, default reply and menu answers",
	Default: true,
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		c, err := connectors.ConfigureSection[Config](node)
		if err != nil {
			return connectors.Instance{}, err
		}
		return connectors.Instance{
			Fallback: []schemas.RouteRule{{
				Name: "builtin-" + name, Match: schemas.RouteMatch{Channel: schemas.Strings{schemas.ChannelMP}}, To: schemas.Strings{name},
			}},
			Options: c.Options(),
			New:     func(context.Context, connectors.Deps) (connectors.Handler, error) { return Handler(c), nil },
		}, nil
	},
}
