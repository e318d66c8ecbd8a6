package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/router"
)

// docker-compose.yml, read by compose's own parser with .env.example: the
// topology docs/deployment.md describes, every connector the routing rules
// can name started somewhere, healthchecks and pinned images everywhere.
func TestComposeFileIsComplete(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(root, ".env.example")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnvFiles(envFile), cli.WithDotEnv, cli.WithProfiles([]string{"cli"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose: %v", err)
	}

	for _, name := range []string{"nats-1", "nats-2", "nats-3", "gateway-1", "gateway-2", "lb", "router", "sender-1", "sender-2", "sim", "erp"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	builds := 0
	only := map[string]bool{}
	for name, s := range p.Services {
		if s.Build != nil {
			builds++
		}
		if !regexp.MustCompile(`:\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$|^wxhub:dev$`).MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		if slices.Contains(s.Profiles, "cli") {
			continue // a one-shot command, not a service
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends on %s without condition: service_healthy", name, dep)
			}
		}
		if strings.HasPrefix(s.Image, "wxhub:") && len(s.Command) > 0 && s.Command[0] == "run" {
			if s.Environment["WXHUB_METRICS_LISTEN"] == nil {
				t.Errorf("%s: no metrics.listen: Prometheus cannot scrape it", name)
			}
			for i, a := range s.Command {
				if a == "--only" && i+1 < len(s.Command) {
					for _, c := range strings.Split(s.Command[i+1], ",") {
						only[c] = true
					}
				}
			}
		}
	}
	if builds != 1 {
		t.Errorf("%d services build the image, want exactly one (one image built once)", builds)
	}
	for _, c := range []string{"gateway", "router", "sender"} {
		if !only[c] {
			t.Errorf("no service runs the %s", c)
		}
	}

	// Every connector the rules can name, and every configured one, runs.
	for k, v := range readEnv(t, envFile) {
		t.Setenv(k, v)
	}
	setup, err := hub.Load(filepath.Join(root, "deploy", "wxhub.compose.yaml"), hub.Builtins)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	rules := setup.Rules()
	named[cmpOr(rules.Default, router.DefaultConnector)] = true
	for _, r := range rules.Rules {
		for _, c := range r.To {
			named[c] = true
		}
	}
	for _, c := range setup.Connectors {
		named[c.Name] = true
	}
	for c := range named {
		if !only["connector:"+c] {
			t.Errorf("connector %s is named by the rules or configured, but no service runs it", c)
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".dockerignore")); err != nil {
		t.Error(".dockerignore missing")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func readEnv(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}
