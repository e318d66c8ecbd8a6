package tracing_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/tracing"
)

// collector is an OTLP/HTTP receiver: it decodes every POST to /v1/traces.
type collector struct {
	srv *httptest.Server
	mu  sync.Mutex
	// spans by name: trace id and parent span id, hex
	spans   map[string][]recvSpan
	posts   int
	badPost string
}

type recvSpan struct {
	traceID, spanID, parentID string
	failed                    bool
	attrs                     map[string]string
	service                   string
}

func newCollector(t *testing.T) *collector {
	c := &collector{spans: map[string][]recvSpan{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.handle))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts++
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || len(body) == 0 {
		c.badPost = r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		c.badPost = "undecodable: " + err.Error()
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, a := range s.Attributes {
					attrs[a.Key] = a.GetValue().GetStringValue()
				}
				c.spans[s.Name] = append(c.spans[s.Name], recvSpan{
					traceID: hex.EncodeToString(s.TraceId), spanID: hex.EncodeToString(s.SpanId),
					parentID: hex.EncodeToString(s.ParentSpanId), failed: s.GetStatus().GetCode() == 2,
					attrs: attrs, service: svc,
				})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

func (c *collector) snapshot() (int, map[string][]recvSpan, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string][]recvSpan{}
	for k, v := range c.spans {
		m[k] = append([]recvSpan(nil), v...)
	}
	return c.posts, m, c.badPost
}

const parentTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		given   tracing.Config
		wantErr string
	}{
		{name: "off", given: tracing.Config{}},
		{name: "http URL", given: tracing.Config{Endpoint: "http://collector:4318"}},
		{name: "https URL with path", given: tracing.Config{Endpoint: "https://otel.example.com/otlp/v1/traces"}},
		{name: "host and port", given: tracing.Config{Endpoint: "collector:4318", Insecure: true}},
		{name: "ratio", given: tracing.Config{Endpoint: "collector:4318", SampleRatio: 0.1}},
		{name: "ratio above 1", given: tracing.Config{Endpoint: "collector:4318", SampleRatio: 1.5}, wantErr: "tracing.sample_ratio"},
		{name: "negative ratio", given: tracing.Config{SampleRatio: -1}, wantErr: "tracing.sample_ratio"},
		{name: "grpc scheme", given: tracing.Config{Endpoint: "grpc://collector:4317"}, wantErr: "tracing.endpoint"},
		{name: "no host", given: tracing.Config{Endpoint: "http:///v1/traces"}, wantErr: "tracing.endpoint"},
		{name: "query", given: tracing.Config{Endpoint: "http://c:4318/v1/traces?x=1"}, wantErr: "tracing.endpoint"},
		{name: "unparsable", given: tracing.Config{Endpoint: "http://[::1"}, wantErr: "tracing.endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.given.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tracing.ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrConfig naming %s", err, tt.wantErr)
			}
			if _, serr := tracing.Setup(context.Background(), tt.given); !errors.Is(serr, tracing.ErrConfig) {
				t.Fatalf("Setup = %v, want ErrConfig", serr)
			}
		})
	}
}

// Off (the default): nothing is exported, and StartSpan still carries the
// trace on with a new span id.
func TestOffExportsNothing(t *testing.T) {
	c := newCollector(t)
	shutdown, err := tracing.Setup(context.Background(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tracing.Enabled() {
		t.Fatal("enabled without an endpoint")
	}
	ctx, end := tracing.StartSpan(context.Background(), "router.route", parentTP)
	end(errors.New("boom"))
	end(nil) // a second call is harmless
	sc, err := bus.ParseTraceParent(bus.TraceParentFrom(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if sc.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID == "00f067aa0ba902b7" {
		t.Fatalf("traceparent %s does not continue %s", sc, parentTP)
	}
	// Bad and missing traceparents start a new trace rather than failing.
	for _, tp := range []string{"", "garbage"} {
		ctx, end := tracing.StartSpan(context.Background(), "x", tp)
		end(nil)
		if _, err := bus.ParseTraceParent(bus.TraceParentFrom(ctx)); err != nil {
			t.Fatalf("traceparent %q: no new trace: %v", tp, err)
		}
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := c.snapshot(); n != 0 {
		t.Fatalf("collector got %d posts with tracing off", n)
	}
}

// On: spans of two hops reach the collector as one trace, child under parent,
// with the error and attributes recorded.
func TestOnExportsSpans(t *testing.T) {
	c := newCollector(t)
	shutdown, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: c.srv.URL, ServiceName: "wxhub-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	if !tracing.Enabled() {
		t.Fatal("not enabled")
	}
	ctx, end := tracing.StartSpan(context.Background(), "router.route", parentTP, tracing.String("wxhub.rule", "orders"))
	routed := bus.TraceParentFrom(ctx) // what the router would publish
	end(nil)
	ctx2, end2 := tracing.StartSpan(context.Background(), "sender.send", routed)
	tracing.SetAttributes(ctx2, tracing.String("wxhub.result", "failed"))
	end2(errors.New("errcode 60020"))

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if tracing.Enabled() {
		t.Fatal("still enabled after shutdown")
	}
	n, spans, bad := c.snapshot()
	if bad != "" {
		t.Fatalf("bad post: %s", bad)
	}
	if n == 0 || len(spans["router.route"]) != 1 || len(spans["sender.send"]) != 1 {
		t.Fatalf("posts %d, spans %v", n, spans)
	}
	r, s := spans["router.route"][0], spans["sender.send"][0]
	if r.traceID != "4bf92f3577b34da6a3ce929d0e0e4736" || r.parentID != "00f067aa0ba902b7" {
		t.Fatalf("router span %+v is not a child of %s", r, parentTP)
	}
	if s.traceID != r.traceID || s.parentID != r.spanID {
		t.Fatalf("sender span %+v is not a child of the router span %+v", s, r)
	}
	if routed != "00-"+r.traceID+"-"+r.spanID+"-01" {
		t.Fatalf("published traceparent %s does not name the router span", routed)
	}
	if r.attrs["wxhub.rule"] != "orders" || s.attrs["wxhub.result"] != "failed" || !s.failed || r.failed {
		t.Fatalf("attributes or status lost: router %+v sender %+v", r, s)
	}
	if r.service != "wxhub-test" {
		t.Fatalf("service.name %q", r.service)
	}
}

// The sample ratio is decided on the trace id: a trace above the ratio is not
// exported on any hop, but its traceparent still goes on.
func TestSampleRatio(t *testing.T) {
	c := newCollector(t)
	shutdown, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: c.srv.URL, SampleRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	in := "00-0000000000000000ffffffffffffffff-00f067aa0ba902b7-01" // id above any ratio < 1
	low := "00-00000000000000000000000000000001-00f067aa0ba902b7-01"
	ctx, end := tracing.StartSpan(context.Background(), "dropped", in)
	end(nil)
	_, end = tracing.StartSpan(context.Background(), "kept", low)
	end(nil)
	if sc, err := bus.ParseTraceParent(bus.TraceParentFrom(ctx)); err != nil || sc.TraceID != "0000000000000000ffffffffffffffff" {
		t.Fatalf("unsampled trace not carried on: %v %v", sc, err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, spans, _ := c.snapshot()
	if len(spans["dropped"]) != 0 || len(spans["kept"]) != 1 {
		t.Fatalf("spans %v, want only kept", spans)
	}
}

// A collector that is down costs log lines, not messages: StartSpan works,
// shutdown returns within its deadline, and the failure is logged once.
func TestCollectorDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	core, logs := observer.New(zapcore.WarnLevel)
	shutdown, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: addr, Insecure: true},
		tracing.WithLogger(zap.New(core)), tracing.WithExportTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, end := tracing.StartSpan(context.Background(), "lost", parentTP)
		end(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_ = shutdown(ctx) // the flush fails; that is the point
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	if logs.FilterMessage("span export failed").Len() == 0 {
		t.Fatal("export failure not logged")
	}
}
