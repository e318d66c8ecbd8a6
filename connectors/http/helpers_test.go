package httpconn_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/schemas"
)

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

// connector builds an instance from a YAML section; %s in src is replaced by url.
func connector(t *testing.T, src, url string, opts ...httpconn.Option) *httpconn.Connector {
	t.Helper()
	cfg, err := httpconn.Decode(node(t, strings.ReplaceAll(src, "URL", url)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := httpconn.New("t", cfg, zaptest.NewLogger(t), opts...)
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

// recorder is a loopback server that records requests and answers with fn.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         string
}

func newRecorder(t *testing.T, fn func(w http.ResponseWriter, r *http.Request, body string)) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.RequestURI(), r.Header.Clone(), b.String()})
		rec.mu.Unlock()
		fn(w, r, b.String())
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func jsonReply(status int, v any) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
}

// replyJSON is a reply's body as JSON text.
func replyJSON(t *testing.T, r connectors.Reply) string {
	t.Helper()
	b, err := json.Marshal(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// one checks a Handle result for exactly one reply: one(t)(c.Handle(ctx, ev)).
func one(t *testing.T) func([]connectors.Reply, error) connectors.Reply {
	return func(r []connectors.Reply, err error) connectors.Reply {
		t.Helper()
		return oneReply(t, r, err)
	}
}

func oneReply(t *testing.T, replies []connectors.Reply, err error) connectors.Reply {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 {
		t.Fatalf("got %d replies, want 1: %v", len(replies), replies)
	}
	return replies[0]
}

var _ = fmt.Sprint

// yamlNode keeps a sub-tree as a node while decoding.
type yamlNode struct{ n *yaml.Node }

func (y *yamlNode) UnmarshalYAML(n *yaml.Node) error { y.n = n; return nil }

// stripType removes the type key, as the hub does before Configure.
func stripType(t *testing.T, n *yaml.Node) *yaml.Node {
	t.Helper()
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "type" {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &c
}

func deps(t *testing.T) connectors.Deps {
	return connectors.Deps{Logger: zaptest.NewLogger(t)}
}
