package hub_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/wxhub/wxhub"

// The kinds of top-level folder and what each may depend on (docs/architecture.md).
var (
	// infrastructure imports no component, nor the loader or the wiring.
	infrastructure = set("schemas", "wecom", "bus", "dnd", "directory", "tracing", "internal")
	// components meet only on the bus: none imports another, nor config or hub.
	components = set("gateway", "router", "sender", "dashboard", "connectors", "identity")
	// wiring and tools may import anything.
	unrestricted = set("cmd", "hub", "config", "e2e", "bench", "examples", "docs")
)

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func topFolder(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, module+"/")
	if !ok {
		return ""
	}
	return strings.SplitN(rest, "/", 2)[0]
}

// TestImportRule checks the transitive (non-test) dependencies of every
// package against the rule, and that every top-level folder has a kind.
func TestImportRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, top := fields[0], topFolder(fields[0])
		switch {
		case unrestricted[top]:
			continue
		case !infrastructure[top] && !components[top]:
			t.Errorf("%s: top-level folder %q has no kind in the import rule (hub/architecture_test.go)", pkg, top)
			continue
		}
		for _, dep := range fields[1:] {
			dtop := topFolder(dep)
			if dtop == "" || dtop == top || infrastructure[dtop] {
				continue
			}
			t.Errorf("%s depends on %s: %s may import only infrastructure (%s) and its own folder",
				pkg, dep, kind(top), strings.Join(keys(infrastructure), ", "))
		}
	}
}

func kind(top string) string {
	if infrastructure[top] {
		return "infrastructure"
	}
	return "a component"
}

func keys(m map[string]bool) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
