// Package nodeconnector_test runs the connector conformance kit against the
// Node.js example connector, as an external process.
package nodeconnector_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/connectors/conformance"
	"github.com/wxhub/wxhub/schemas"
)

// knowledgeBase is the example's legacy system: POST /answer {"question"} ->
// {"answer"}, 404 for a question it has no answer to.
func knowledgeBase() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Question string `json:"question"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/answer" || json.NewDecoder(r.Body).Decode(&q) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if strings.Contains(q.Question, "unknown") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"answer": "答案：" + q.Question})
	})
}

// nodeOrSkip finds node and the installed packages. In CI a missing node or
// a missing `npm ci` fails the test: the example must be checked there.
func nodeOrSkip(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		if _, err = os.Stat(filepath.Join("node_modules", "nats")); err != nil {
			err = nil
			if os.Getenv("CI") != "" {
				t.Fatal("examples/node-connector: node_modules missing; run `npm ci` there first")
			}
			t.Skip("examples/node-connector: node_modules missing; run `npm ci` there to test the Node connector")
		}
		return node
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("node is required in CI to test the Node connector: %v", err)
	}
	t.Skipf("node not installed (%v); CI runs this test", err)
	return ""
}

func TestNodeConnectorConformance(t *testing.T) {
	node := nodeOrSkip(t)
	legacy := conformance.NewLegacyServer(t, knowledgeBase())
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Connector{
		Name: "kb",
		Start: conformance.Process([]string{node, "index.js"}, dir,
			"LEGACY_URL="+legacy.URL(), "LEGACY_TIMEOUT_MS=2000",
			"WXHUB_SCHEMAS_DIR="+filepath.Join(dir, "..", "..", "schemas")),
		Samples: []conformance.Sample{
			{Name: "question", Event: conformance.Text("kb 报销流程"), Want: conformance.ReplyContains("答案：报销流程")},
			{Name: "no answer: the user is told", Event: conformance.Text("kb unknown thing"), Want: conformance.ReplyContains("没有找到")},
			{Name: "empty question: the user is told", Event: conformance.Text("kb"), Want: conformance.ReplyContains("请在 kb 后面写上问题")},
			{Name: "not a text: acked, no reply", Event: schemas.Event{Data: schemas.EventData{MsgType: "event", Event: "enter_agent"}},
				Want: func(out []schemas.Outbound) error { return nil }},
		},
		Legacy:       legacy,
		LegacySample: conformance.Sample{Name: "question", Event: conformance.Text("kb 年假"), Want: conformance.ReplyContains("答案：年假")},
	})
}
