package erp_test

import (
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/schemas"
)

// startERP runs a sample ERP on a free loopback port.
func startERP(t *testing.T, cfg erpdemo.Config) *erpdemo.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	s := erpdemo.New(cfg)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newConnector(t *testing.T, baseURL string, timeout time.Duration) *erp.Connector {
	t.Helper()
	c, err := erp.New(erp.Config{BaseURL: baseURL, Timeout: timeout}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func textEvent(id, user, content string) *schemas.Event {
	return &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "wecom/helpdesk", Type: "wxhub.in.text",
		Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", User: user, MsgType: "text", Content: content},
	}
}

func clickEvent(id, user, taskID, key, responseCode string) *schemas.Event {
	return &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "wecom/helpdesk", Type: "wxhub.in.event.template_card_event",
		Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", User: user, MsgType: "event",
			Event: "template_card_event", EventKey: key, TaskID: taskID, CardType: "button_interaction", ResponseCode: responseCode},
	}
}

// replyBody is the JSON fields of a reply body the tests look at.
type replyBody struct {
	ToUser       string `json:"touser"`
	MsgType      string `json:"msgtype"`
	Text         struct{ Content string }
	Markdown     struct{ Content string }
	UserIDs      []string `json:"userids"`
	ResponseCode string   `json:"response_code"`
	Button       struct {
		ReplaceName string `json:"replace_name"`
	} `json:"button"`
}

func decodeBody(t *testing.T, raw []byte) replyBody {
	t.Helper()
	var b replyBody
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("reply body %s: %v", raw, err)
	}
	return b
}

func bodyOf(t *testing.T, r connectors.Reply) replyBody {
	t.Helper()
	raw, err := json.Marshal(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return decodeBody(t, raw)
}

// content is a text or markdown reply's content.
func (b replyBody) content() string {
	if b.MsgType == "markdown" {
		return b.Markdown.Content
	}
	return b.Text.Content
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
