package httpconn_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/connectors/http/ticketdemo"
	"github.com/wxhub/wxhub/schemas"
)

func TestDryRunMasksSecretsAndShowsReply(t *testing.T) {
	const section = `type: http
match:
  content: '^工单\s*(\d+)'
request:
  method: POST
  url: 'http://tickets.example/api/tickets/{{ index .match 1 }}?api_key=k123&lang=zh'
  headers:
    X-Api-Token: tok-abc
    X-User: '{{ .user }}'
  body: '{"by": {{ json .user }}}'
auth:
  kind: bearer
  token: very-secret
reply:
  kind: markdown
  template: '**{{ .json.title }}**'
`
	ev := textEvent("e1", "zhangsan", "工单 77")
	res, err := httpconn.DryRun(context.Background(), "tickets", node(t, section), ev,
		&httpconn.SampleResponse{Status: 200, Body: []byte(`{"title":"打印机"}`)})
	if err != nil {
		t.Fatal(err)
	}
	out := res.String()
	for _, want := range []string{
		"POST http://tickets.example/api/tickets/77?api_key=****&lang=zh",
		"Authorization: Bearer ****", "X-Api-Token: ****", "X-User: zhangsan",
		`{"by": "zhangsan"}`, "outcome: success",
		`reply via app helpdesk (message, normal): {"markdown":{"content":"**打印机**"},"msgtype":"markdown","touser":"zhangsan"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"very-secret", "tok-abc", "k123"} {
		if strings.Contains(out, secret) {
			t.Errorf("dry run shows the secret %q:\n%s", secret, out)
		}
	}

	// Without a response: the request only. With a failing one: the outcome and reason.
	res, err = httpconn.DryRun(context.Background(), "tickets", node(t, section), ev, nil)
	if err != nil || res.Outcome != "" || strings.Contains(res.String(), "outcome") {
		t.Fatalf("request only: %v\n%s", err, res)
	}
	res, err = httpconn.DryRun(context.Background(), "tickets", node(t, section), ev, &httpconn.SampleResponse{Status: 503, Body: []byte("busy")})
	if err != nil || !strings.Contains(res.String(), "outcome: retry (HTTP 503: busy)") {
		t.Fatalf("503: %v\n%s", err, res)
	}
	// Config errors come out as such.
	if _, err := httpconn.DryRun(context.Background(), "tickets", node(t, "request:\n  url: ''\n"), ev, nil); err == nil || !strings.Contains(err.Error(), "request.url") {
		t.Fatalf("bad config: %v", err)
	}
}

func TestDryRunHMACAndOAuth2(t *testing.T) {
	ev := textEvent("e1", "zhangsan", "x")
	res, err := httpconn.DryRun(context.Background(), "t", node(t, "request:\n  url: http://a/b\n  body: x\nauth:\n  kind: hmac\n  secret: s\n"), ev, nil)
	if err != nil || !strings.Contains(res.String(), "X-Signature: sha256=****") || !strings.Contains(res.String(), "X-Timestamp: ") {
		t.Fatalf("hmac: %v\n%s", err, res)
	}
	res, err = httpconn.DryRun(context.Background(), "t", node(t, "request:\n  url: http://a/b\nauth:\n  kind: oauth2\n  token_url: http://idp/token\n  client_id: a\n  client_secret: b\n"), ev, nil)
	if err != nil || !strings.Contains(res.String(), "Authorization: Bearer <token from http://idp/token>") {
		t.Fatalf("oauth2: %v\n%s", err, res)
	}
}

// TestTicketDemoSnippet answers "工单 77" from the sample ticketing service
// with the demo's config, and "工单 5" with "没有工单 5".
func TestTicketDemoSnippet(t *testing.T) {
	srv := ticketdemo.New(ticketdemo.Config{Token: ticketdemo.DemoToken})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var doc struct{ Tickets yamlNode }
	n := node(t, ticketdemo.Snippet(srv.URL()))
	if err := n.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	inst, err := httpconn.Builtin.Configure("tickets", stripType(t, doc.Tickets.n))
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.Rules) != 1 || inst.Rules[0].Match.Content != `^工单\s*(\d+)` {
		t.Fatalf("rules %+v", inst.Rules)
	}
	h, err := inst.New(context.Background(), deps(t))
	if err != nil {
		t.Fatal(err)
	}
	got := replyJSON(t, one(t)(h.Handle(context.Background(), textEvent("e1", "zhangsan", "工单 77"))))
	if !strings.Contains(got, `"content":"工单 77：打印机卡纸（三楼）\n状态：in_progress\n处理人：lisi"`) {
		t.Fatalf("reply %s", got)
	}
	got = replyJSON(t, one(t)(h.Handle(context.Background(), textEvent("e2", "zhangsan", "工单5"))))
	if !strings.Contains(got, `"content":"没有工单 5"`) {
		t.Fatalf("reply %s", got)
	}
	got = replyJSON(t, one(t)(h.Handle(context.Background(), textEvent("e3", "zhangsan", "工单 78"))))
	if !strings.Contains(got, "处理人：未分配") {
		t.Fatalf("reply %s", got)
	}
}

// TestTicketsTestdata keeps testdata/tickets.yaml (the docs' snippet) equal to Snippet.
func TestTicketsTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/tickets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Connectors struct{ Tickets yamlNode } }
	var want struct{ Tickets yamlNode }
	if err := node(t, string(b)).Decode(&file); err != nil {
		t.Fatal(err)
	}
	if err := node(t, ticketdemo.Snippet("http://"+ticketdemo.DefaultListen)).Decode(&want); err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(file.Connectors.Tickets.n)
	exp, _ := yaml.Marshal(want.Tickets.n)
	if string(got) != string(exp) {
		t.Fatalf("testdata/tickets.yaml differs from Snippet:\n%s\nwant\n%s", got, exp)
	}
}

// TestDryRunDocsExample is the dry run docs/connectors/http.md shows.
func TestDryRunDocsExample(t *testing.T) {
	b, _ := os.ReadFile("testdata/tickets.yaml")
	var file struct{ Connectors struct{ Tickets yamlNode } }
	if err := node(t, string(b)).Decode(&file); err != nil {
		t.Fatal(err)
	}
	var ev schemas.Event
	raw, _ := os.ReadFile("testdata/event-ticket.json")
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	resp, _ := os.ReadFile("testdata/response-ticket-77.json")
	res, err := httpconn.DryRun(context.Background(), "tickets", file.Connectors.Tickets.n, &ev, &httpconn.SampleResponse{Status: 200, Body: resp})
	if err != nil {
		t.Fatal(err)
	}
	want := `GET http://127.0.0.1:8082/tickets/77
Accept: application/json
Authorization: Bearer ****

outcome: success
reply via app helpdesk (message, normal): {"msgtype":"text","text":{"content":"工单 77：打印机卡纸（三楼）\n状态：in_progress\n处理人：lisi"},"touser":"zhangsan"}
`
	if got := res.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
