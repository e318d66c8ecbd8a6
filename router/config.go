package router

import (
	"errors"
	"regexp"
	"strings"

	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/schemas"
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
	// Transcriber turns WeCom voice messages into text before they are routed
	// (data.recognition, WeChat's own field for it): an OpenAI-compatible
	// /v1/audio/transcriptions service (transcribe.Config). Its timeout (here
	// default 4s) bounds fetching the audio and transcribing it; on failure
	// the event is routed without a transcript. Empty base_url: off.
	Transcriber transcribe.Config `yaml:"transcriber"`
}

// Rule sends matching events to connectors; Match selects them. The types
// live in schemas so that a built-in connector can declare its default rules
// without importing the router.
type (
	Rule    = schemas.RouteRule
	Match   = schemas.RouteMatch
	Strings = schemas.Strings
)

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
