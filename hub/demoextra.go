package hub

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/wecom/sim"
)

// DemoExtra is an integrator's additions to the demo (`wxhub demo --config
// extra.yaml`), in wxhub.yaml's shape: router.rules, nats.users, wecom.apps
// (also added to the simulator's corp) and connectors sections. Any other key
// is refused, so that nothing in the file is silently ignored.
type DemoExtra struct {
	cfg *config.Config
}

// LoadDemoExtra reads and checks an extra file; ${VAR} is expanded from lookupEnv.
func LoadDemoExtra(path string, lookupEnv func(string) (string, bool)) (*DemoExtra, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", config.ErrInvalid, err)
	}
	c, err := config.Decode(raw, lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rest := *c
	rest.Router.Rules, rest.NATS.Users, rest.WeCom.Apps, rest.Connectors = nil, nil, nil, nil
	if keys := setKeys(reflect.ValueOf(rest), ""); len(keys) > 0 {
		return nil, fmt.Errorf("%w: %s: %s: the demo merges only router.rules, nats.users, wecom.apps and connectors",
			config.ErrInvalid, path, strings.Join(keys, ", "))
	}
	return &DemoExtra{cfg: c}, nil
}

// ApplySim adds the extra apps to the simulator's corp (before DemoConfig).
func (e *DemoExtra) ApplySim(s *sim.Config) {
	for _, a := range e.cfg.WeCom.Apps {
		s.Apps = append(s.Apps, sim.App{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret, Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
}

// Apply merges the extra rules, NATS users and connector sections into the
// demo's config c (whose apps come from the simulator, see ApplySim). A
// connector section the demo already has is an error.
func (e *DemoExtra) Apply(c *config.Config) error {
	c.Router.Rules = append(c.Router.Rules, e.cfg.Router.Rules...)
	c.NATS.Users = append(c.NATS.Users, e.cfg.NATS.Users...)
	for name, node := range e.cfg.Connectors {
		if _, dup := c.Connectors[name]; dup {
			return fmt.Errorf("%w: connectors.%s: the demo already configures it", config.ErrInvalid, name)
		}
		if c.Connectors == nil {
			c.Connectors = map[string]yaml.Node{}
		}
		c.Connectors[name] = node
	}
	return nil
}

// ExternalConnector is a routing target that no built-in connector serves:
// a connector process that connects to the hub's NATS.
type ExternalConnector struct {
	Name string
	User string // its NATS user, "" when nats.users names none
}

// External lists the targets of s's rules that are not built-in instances, in rule order.
func (s *Setup) External() []ExternalConnector {
	var out []ExternalConnector
	for _, r := range s.Rules().Rules {
		for _, to := range r.To {
			if _, builtin := s.Connector(to); builtin || slices.ContainsFunc(out, func(x ExternalConnector) bool { return x.Name == to }) {
				continue
			}
			ec := ExternalConnector{Name: to}
			for _, u := range s.Config.NATS.Users {
				if u.Connector == to {
					ec.User = u.Name
				}
			}
			out = append(out, ec)
		}
	}
	return out
}

// ConnectorEnv is the environment a connector process named name needs to
// reach the hub's NATS at natsURL as user (password elided), in the
// WXHUB_* variables the conformance kit sets.
func ConnectorEnv(natsURL string, partitions int, name, user string) []string {
	env := []string{"WXHUB_NATS_URL=" + natsURL, "WXHUB_CONNECTOR=" + name, fmt.Sprintf("WXHUB_PARTITIONS=%d", partitions)}
	if user != "" {
		env = append(env, "WXHUB_NATS_USER="+user, "WXHUB_NATS_PASSWORD=<its password in nats.users>", "WXHUB_NATS_INBOX_PREFIX="+bus.InboxPrefix(name))
	}
	return env
}

// setKeys lists the yaml keys of v's fields that are not zero ("gateway.listen").
func setKeys(v reflect.Value, prefix string) []string {
	var keys []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := v.Field(i)
		if !t.Field(i).IsExported() || f.IsZero() {
			continue
		}
		key := prefix + strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if f.Kind() == reflect.Struct {
			if sub := setKeys(f, key+"."); len(sub) > 0 {
				keys = append(keys, sub...)
				continue
			}
		}
		keys = append(keys, key)
	}
	return keys
}
