package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// toy is what a new built-in connector's folder exports: adding it to the
// registration list is the only other change a hub needs.
var toy = connectors.Builtin{
	Type: "toy",
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		var c struct {
			connectors.RunnerConfig `yaml:",inline"`
			Greeting                string `yaml:"greeting"`
		}
		if err := connectors.DecodeSection(node, &c); err != nil {
			return connectors.Instance{}, err
		}
		if c.Greeting == "" {
			c.Greeting = "你好"
		}
		return connectors.Instance{
			Rules: []schemas.RouteRule{{Name: "toy", Match: schemas.RouteMatch{Keywords: schemas.Strings{"玩具"}}, To: schemas.Strings{name}}},
			New: func(context.Context, connectors.Deps) (connectors.Handler, error) {
				return connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
					return []connectors.Reply{connectors.Text(ev.Data.User, c.Greeting+" from "+name)}, nil
				}), nil
			},
		}, nil
	},
}

func TestToyBuiltinAnswersThroughTheHub(t *testing.T) {
	h := hubtest.Start(t, hubtest.WithBuiltins(append([]connectors.Builtin{toy}, hub.Builtins...)...),
		hubtest.WithConfig(func(c *config.Config) {
			c.Connectors = map[string]yaml.Node{"toy": hub.Section(map[string]string{"greeting": "嗨"})}
		}))
	ctx := hubtest.Ctx(t, 20*time.Second)
	if _, err := h.Sim.Say(ctx, "helpdesk", "zhangsan", "我的玩具"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && m.Content == "嗨 from toy" }); err != nil {
		t.Fatal(err)
	}
}

func TestConfigureConnectors(t *testing.T) {
	builtins := append([]connectors.Builtin{toy}, hub.Builtins...)
	tests := []struct {
		name      string
		yaml      string
		wantNames []string
		wantErr   string
	}{
		{name: "defaults only", yaml: "", wantNames: []string{"dnd", "scanlogin", "help", "echo", "mpreply"}},
		{name: "default turned off", yaml: "echo: false", wantNames: []string{"dnd", "scanlogin", "help", "mpreply"}},
		{name: "two instances of one type", yaml: "toy-a: {type: toy}\ntoy-b: {type: toy, greeting: hi}",
			wantNames: []string{"toy-a", "toy-b", "dnd", "scanlogin", "help", "echo", "mpreply"}},
		{name: "erp with its section", yaml: "erp: {base_url: 'http://127.0.0.1:8081'}",
			wantNames: []string{"dnd", "scanlogin", "erp", "help", "echo", "mpreply"}},
		{name: "erp key named", yaml: "erp: {timeout: 5s}", wantErr: "config: connectors.erp.base_url: is required"},
		{name: "unknown key named with line", yaml: "toy:\n  greetng: x", wantErr: "connectors.toy.greetng: unknown key (line 3)"},
		{name: "unknown type", yaml: "crm: {type: salesforce}", wantErr: `connectors.crm: no built-in connector of type "salesforce"`},
		{name: "bad name", yaml: "Bad_Name: {type: toy}", wantErr: `connectors.Bad_Name: "Bad_Name" is not a connector name`},
		{name: "runner key checked", yaml: "echo: {concurrency: 5000}", wantErr: "connectors.echo.concurrency: must be 1 to 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var root struct {
				Connectors map[string]yaml.Node `yaml:"connectors"`
			}
			if err := yaml.Unmarshal([]byte("connectors:\n"+indent(tt.yaml)), &root); err != nil {
				t.Fatal(err)
			}
			cfg := &config.Config{Connectors: root.Connectors}
			cfg.Defaults()
			s, err := hub.Configure(cfg, builtins)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range s.Connectors {
				names = append(names, c.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantNames, ",") {
				t.Errorf("connectors %v, want %v", names, tt.wantNames)
			}
		})
	}
}

// The connectors' rules frame the configured ones: theirs first, then the
// config's, then the fallbacks (echo's catch-all must not shadow a user rule).
func TestRulesOrder(t *testing.T) {
	cfg := &config.Config{}
	cfg.Router.Rules = []schemas.RouteRule{{Name: "mine", Match: schemas.RouteMatch{Keywords: schemas.Strings{"x"}}, To: schemas.Strings{"echo"}}}
	cfg.Defaults()
	s, err := hub.Configure(cfg, hub.Builtins)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range s.Rules().Rules {
		names = append(names, r.Name)
	}
	want := "builtin-dnd,builtin-scanlogin,builtin-scanlogin-confirm,mine,builtin-echo,builtin-mpreply"
	if strings.Join(names, ",") != want {
		t.Errorf("rules %v, want %s", names, want)
	}
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
