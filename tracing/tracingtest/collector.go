// Package tracingtest is an OTLP/HTTP collector for tests: it receives the
// spans that tracing.Setup exports and keeps their names and ids.
package tracingtest

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span; ids are lower-case hex, ParentID "" for a root.
type Span struct {
	Name, TraceID, SpanID, ParentID string
	Failed                          bool // status code Error
	Attrs                           map[string]string
}

// Collector receives OTLP/HTTP protobuf posts on /v1/traces. Safe for
// concurrent use.
type Collector struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []Span
	bad   int
}

// New starts a collector on 127.0.0.1, closed when t ends. Point
// tracing.Config.Endpoint at URL().
func New(t testing.TB) *Collector {
	c := &Collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(c.handle))
	t.Cleanup(c.srv.Close)
	return c
}

// URL is the collector's base URL.
func (c *Collector) URL() string { return c.srv.URL }

func (c *Collector) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		c.mu.Lock()
		c.bad++
		c.mu.Unlock()
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, a := range s.Attributes {
					attrs[a.Key] = a.GetValue().GetStringValue()
				}
				c.spans = append(c.spans, Span{
					Name: s.Name, TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					ParentID: hex.EncodeToString(s.ParentSpanId), Failed: s.GetStatus().GetCode() == 2, Attrs: attrs,
				})
			}
		}
	}
}

// Spans returns the spans received so far with the given name ("" for all).
func (c *Collector) Spans(name string) []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Span
	for _, s := range c.spans {
		if name == "" || s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// BadPosts counts requests that were not OTLP trace exports.
func (c *Collector) BadPosts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bad
}
