// Package hub wires wxhub's components into one process: it loads the
// config, configures the built-in connectors from the registration list, and
// starts the components a process runs (all of them, or those --only names).
// It and cmd/ are the only packages that import components and config.
package hub

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/schemas"
)

// Setup is a loaded config with its built-in connectors configured.
type Setup struct {
	Config *config.Config
	// Connectors are the configured instances, in the registration list's
	// order (which orders their rules), instances of one type by name.
	Connectors []Connector
}

// Connector is one configured built-in connector instance.
type Connector struct {
	Name string // the instance's name: its section key and routing target
	Type string
	connectors.Instance
}

// Load reads and validates the config file and configures its connectors.
func Load(path string, builtins []connectors.Builtin) (*Setup, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return Configure(cfg, builtins)
}

// Configure configures cfg's connectors from builtins: every section under
// `connectors:` and every Default builtin without one. Errors read
// "config: connectors.<name>.<key>: <problem>".
func Configure(cfg *config.Config, builtins []connectors.Builtin) (*Setup, error) {
	byType := map[string]connectors.Builtin{}
	for _, b := range builtins {
		byType[b.Type] = b
	}
	instances := map[string][]Connector{}
	names := make([]string, 0, len(cfg.Connectors))
	for name := range cfg.Connectors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		node := cfg.Connectors[name]
		key := "connectors." + name
		if !validName(name) {
			return nil, fmt.Errorf("%w: %s: %q is not a connector name (a-z 0-9 _ -)", config.ErrInvalid, key, name)
		}
		if on, isBool := boolNode(&node); isBool {
			if !on {
				continue // `<name>: false` turns a default connector off
			}
			node = yaml.Node{}
		}
		typ, section, err := splitType(&node, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.type: %v", config.ErrInvalid, key, err)
		}
		b, ok := byType[typ]
		if !ok {
			return nil, fmt.Errorf("%w: %s: no built-in connector of type %q (known: %s)", config.ErrInvalid, key, typ, strings.Join(types(builtins), ", "))
		}
		inst, err := b.Configure(name, section)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.%v", config.ErrInvalid, key, err)
		}
		instances[typ] = append(instances[typ], Connector{Name: name, Type: typ, Instance: inst})
	}
	s := &Setup{Config: cfg}
	for _, b := range builtins {
		if _, configured := cfg.Connectors[b.Type]; b.Default && !configured {
			inst, err := b.Configure(b.Type, nil)
			if err != nil {
				return nil, fmt.Errorf("%w: connectors.%s.%v", config.ErrInvalid, b.Type, err)
			}
			s.Connectors = append(s.Connectors, Connector{Name: b.Type, Type: b.Type, Instance: inst})
		}
		s.Connectors = append(s.Connectors, instances[b.Type]...)
	}
	if err := s.Rules().Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s", config.ErrInvalid, strings.TrimPrefix(err.Error(), router.ErrConfig.Error()+": "))
	}
	return s, nil
}

// Rules are the router's rules: the connectors' own rules, then the
// configured ones, then the connectors' fallbacks.
func (s *Setup) Rules() router.Config {
	rc := s.Config.Router
	var rules []schemas.RouteRule
	for _, c := range s.Connectors {
		rules = append(rules, c.Rules...)
	}
	rules = append(rules, rc.Rules...)
	for _, c := range s.Connectors {
		rules = append(rules, c.Fallback...)
	}
	rc.Rules = rules
	return rc
}

// Connector returns the configured instance named name.
func (s *Setup) Connector(name string) (Connector, bool) {
	for _, c := range s.Connectors {
		if c.Name == name {
			return c, true
		}
	}
	return Connector{}, false
}

// Section encodes v (a connector's Config) as the YAML node of its section,
// for configs built in code (the demo, tests).
func Section(v any) yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		panic(fmt.Sprintf("hub.Section: %v", err)) // a Config that YAML cannot encode is a bug
	}
	return n
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// boolNode reports whether n is a plain true/false scalar, and which.
func boolNode(n *yaml.Node) (on, isBool bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, false
	}
	return b, true
}

// splitType takes the `type:` key out of a section: the connector's type
// (default: the section's name) and the rest of the section, nil when empty.
func splitType(n *yaml.Node, name string) (string, *yaml.Node, error) {
	switch {
	case n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null"):
		return name, nil, nil
	case n.Kind != yaml.MappingNode:
		return "", nil, fmt.Errorf("line %d: want a mapping (or false to turn the connector off)", n.Line)
	}
	rest := *n
	rest.Content = nil
	typ := name
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typ = n.Content[i+1].Value
			continue
		}
		rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
	}
	if len(rest.Content) == 0 {
		return typ, nil, nil
	}
	return typ, &rest, nil
}

func types(builtins []connectors.Builtin) []string {
	var t []string
	for _, b := range builtins {
		t = append(t, b.Type)
	}
	slices.Sort(t)
	return t
}

// AddSections adds the connector sections of a YAML snippet (the keys that
// go under `connectors:`) to cfg, replacing sections of the same name.
func AddSections(cfg *config.Config, snippet string) error {
	var sections map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(snippet), &sections); err != nil {
		return fmt.Errorf("%w: connectors: %v", config.ErrInvalid, err)
	}
	if cfg.Connectors == nil {
		cfg.Connectors = map[string]yaml.Node{}
	}
	for name, n := range sections {
		cfg.Connectors[name] = n
	}
	return nil
}
