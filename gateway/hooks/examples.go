package hooks

import (
	_ "embed"
	"fmt"

	"go.yaml.in/yaml/v3"
)

//go:embed testdata/hooks.yaml
var examplesYAML []byte

// ExamplesYAML is the worked examples' config (a `hooks:` section: gitlab-ci,
// alertmanager, jira), as docs/connectors/http.md shows it.
func ExamplesYAML() string { return string(examplesYAML) }

// Examples is the worked examples' hooks, for the demo (app "helpdesk").
func Examples() Config {
	var doc struct{ Hooks yaml.Node }
	if err := yaml.Unmarshal(examplesYAML, &doc); err != nil {
		panic(fmt.Sprintf("hooks: examples: %v", err))
	}
	c, err := Decode(&doc.Hooks)
	if err != nil {
		panic(fmt.Sprintf("hooks: examples: %v", err))
	}
	return c
}
