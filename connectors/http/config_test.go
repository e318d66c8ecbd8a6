package httpconn_test

import (
	"strings"
	"testing"

	httpconn "github.com/wxhub/wxhub/connectors/http"
)

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name, given, wantErr string
	}{
		{"no url", "request:\n  method: GET\n", "request.url: is required"},
		{"bad method", "request:\n  url: http://x\n  method: FETCH\n", "request.method: \"FETCH\" is not GET, POST, PUT, PATCH or DELETE (line 3)"},
		{"bad template", "request:\n  url: http://x\n  body: '{{ .x '\n", "request.body: template: request.body:1: unclosed action (line 3)"},
		{"unknown key", "request:\n  url: http://x\n  urll: y\n", "request.urll: unknown key (line 3)"},
		{"bad status", "request:\n  url: http://x\nresponse:\n  retry: [5xy]\n", "response.retry[0]: \"5xy\" is not a status"},
		{"auth missing token", "request:\n  url: http://x\nauth:\n  kind: bearer\n", "auth.token: is required for kind bearer (line 3)"},
		{"auth kind", "request:\n  url: http://x\nauth:\n  kind: digest\n", "auth.kind: \"digest\" is not bearer, basic, hmac or oauth2 (line 4)"},
		{"oauth2 token_url", "request:\n  url: http://x\nauth:\n  kind: oauth2\n  token_url: ftp://a\n  client_id: a\n  client_secret: b\n", "auth.token_url: \"ftp://a\" is not an http(s) URL (line 5)"},
		{"reply kind", "request:\n  url: http://x\nreply:\n  kind: voice\n", "reply.kind: \"voice\" is not text, markdown, template_card, wecom or none (line 4)"},
		{"reply template required", "request:\n  url: http://x\nreply:\n  kind: markdown\n", "reply.template: is required for kind markdown (line 3)"},
		{"bad regexp", "request:\n  url: http://x\nmatch:\n  content: '(('\n", "match.content: invalid regexp"},
		{"env secret unset", "request:\n  url: http://x\nauth:\n  kind: hmac\n  secret: env:WXHUB_TEST_SURELY_UNSET\n", "auth.secret: environment variable WXHUB_TEST_SURELY_UNSET is not set (line 5)"},
		{"runner key", "request:\n  url: http://x\nmax_deliver: -1\n", "max_deliver: must be at least 1, got -1 (line 3)"},
		{"valid", "request:\n  url: 'http://x/{{ index .match 1 }}'\nmatch:\n  content: '^工单\\s*(\\d+)'\nreply:\n  template: hi\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := httpconn.Decode(node(t, tt.given))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuiltinRules(t *testing.T) {
	inst, err := httpconn.Builtin.Configure("tickets", node(t, "match:\n  content: '^工单'\ndescription: d\nrequest:\n  url: http://x\nmax_deliver: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.Rules) != 1 || inst.Rules[0].To[0] != "tickets" || inst.Rules[0].Match.Content != "^工单" || inst.Rules[0].Description != "d" {
		t.Fatalf("rules %+v", inst.Rules)
	}
	if inst.Options.MaxDeliver != 3 {
		t.Fatalf("options %+v", inst.Options)
	}
	inst, err = httpconn.Builtin.Configure("x", node(t, "request:\n  url: http://x\n"))
	if err != nil || len(inst.Rules) != 0 {
		t.Fatalf("without match: %v %+v", err, inst.Rules)
	}
	if httpconn.Builtin.Default || httpconn.Builtin.Type != "http" {
		t.Fatal("http must be a non-default type named http")
	}
}
