package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wxhub/wxhub/wecom"
)

// newHTTPConnector is `wxhub new http-connector NAME`: a YAML HTTP connector
// for an HTTP system, no Go code: the connector's section (for `wxhub demo
// --config` and wxhub.yaml), a sample event and answer for `wxhub connector
// test`, and a README.
func newHTTPConnector(args []string) error {
	fs := flag.NewFlagSet("new http-connector", flag.ContinueOnError)
	dir := fs.String("dir", "", "where to write the files (default ./NAME)")
	keyword := fs.String("keyword", "", "the word that routes a text to it; the rest of the text is the query (default NAME)")
	url := fs.String("url", "http://127.0.0.1:9000/api/{{ urlquery (index .match 1) }}", "the system's URL; a Go template over the event (.match: the text after the keyword, .user, .content)")
	name, err := parseNamed(fs, args)
	if err != nil {
		return err
	}
	if !wecom.NamePattern.MatchString(name) {
		return fmt.Errorf("NAME %q: 1-32 of a-z 0-9 _ - (it is the connector's name in routing rules)", name)
	}
	if *keyword == "" {
		*keyword = name
	}
	if *dir == "" {
		*dir = name
	}
	if _, err := os.Stat(*dir); err == nil {
		return fmt.Errorf("%s exists: choose another --dir", *dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	r := strings.NewReplacer("NAME", name, "KEYWORD", *keyword, "URLTEMPLATE", *url)
	files := map[string]string{
		"connector.yaml":       httpConnectorYAML,
		"sample-event.json":    httpSampleEvent,
		"sample-response.json": httpSampleResponse,
		"README.md":            httpReadme,
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(*dir, f), []byte(r.Replace(text)), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s/: connector.yaml, sample-event.json, sample-response.json, README.md\n", *dir)
	fmt.Printf("try:  wxhub connector test %s --config %s/connector.yaml --event %[2]s/sample-event.json --response %[2]s/sample-response.json\n", name, *dir)
	fmt.Printf("then: make run ARGS=\"--config %s/connector.yaml\"   and   wxhub sim say zhangsan \"%s 42\"\n", *dir, *keyword)
	return nil
}

const httpConnectorYAML = `# The NAME connector: the http connector asks an HTTP system and answers the
# user, configured here only (docs/connectors/http.md has every key).
connectors:
  NAME:
    type: http
    description: "KEYWORD <查询>：由 NAME 系统回答"
    match:
      msg_type: text
      content: '^KEYWORD\s*(.+)$'
    request:
      method: GET
      url: 'URLTEMPLATE'
      headers:
        Accept: application/json
    # auth: {kind: bearer, token: env:NAME_TOKEN}   # bearer, basic, hmac or oauth2
    timeout: 5s
    response:
      success: ["2xx", "404"]
      retry: ["408", "429", "5xx"]
    reply:
      kind: text
      template: |-
        {{- if eq .status 404 -}}
        NAME：没有找到 {{ index .match 1 }}
        {{- else -}}
        NAME：{{ .json.answer }}
        {{- end }}
`

const httpSampleEvent = `{
  "channel": "wecom",
  "app": "helpdesk",
  "user": "zhangsan",
  "msg_type": "text",
  "content": "KEYWORD 42"
}
`

const httpSampleResponse = `{"answer": "42 号的结果"}
`

const httpReadme = "# NAME — an HTTP system answered through wxhub, no code\n\n" +
	"`connector.yaml` is the `connectors.NAME` section of the hub's config: a text\n" +
	"starting with `KEYWORD` is sent to the system (`request.url`, a template over the\n" +
	"event), and its JSON answer becomes the reply (`reply.template`).\n\n" +
	"1. Point `request.url` at the system, set `auth` if it wants it, and shape the\n" +
	"   reply template to its answer.\n" +
	"2. See what would be sent, without sending:\n\n" +
	"       wxhub connector test NAME --config connector.yaml --event sample-event.json --response sample-response.json\n\n" +
	"3. Run it in the demo hub and ask:\n\n" +
	"       make run ARGS=\"--config path/to/connector.yaml\"\n" +
	"       wxhub sim say zhangsan \"KEYWORD 42\"\n\n" +
	"4. In production, copy the section under `connectors:` in wxhub.yaml; the\n" +
	"   router's rules may name it too (`to: NAME`). docs/connectors/http.md has\n" +
	"   every key: auth (bearer, basic, HMAC, OAuth2), retries, dead letters, cards.\n"
