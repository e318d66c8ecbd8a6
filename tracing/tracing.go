// Package tracing exports OpenTelemetry spans of wxhub's hops (gateway, router,
// connectors, sender) to an OTLP/HTTP collector. It is off by default: until
// Setup is called with an endpoint, StartSpan only continues the W3C
// traceparent carried in NATS headers (what bus.ContextFromHeader does) and
// records nothing.
//
// Each hop calls StartSpan with the traceparent of the message it handles; the
// returned context carries both the span and, for bus.PublishJSON, a
// traceparent naming that span, so the next hop's span is its child and one
// trace shows a message from the WeChat callback to the reply.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
)

// ErrConfig wraps every configuration error; the message names the key.
var ErrConfig = errors.New("tracing: invalid config")

// Config is the `tracing:` section of the main config. The zero value is off.
type Config struct {
	// Endpoint of the OTLP/HTTP collector: "http://collector:4318" (spans go to
	// /v1/traces), a full URL with its own path, or "host:port" (then Insecure
	// picks http or https). Empty (default): tracing off.
	Endpoint string `yaml:"endpoint"`
	// ServiceName is the service.name resource attribute. Default "wxhub".
	ServiceName string `yaml:"service_name"`
	// SampleRatio of traces recorded, 0 < ratio <= 1; 0 means the default, 1 (all).
	// The choice is made from the trace id, so every hop of a trace agrees
	// without being told.
	SampleRatio float64 `yaml:"sample_ratio"`
	// Insecure uses plain HTTP for a "host:port" endpoint. An endpoint with a
	// scheme says it itself. Default false (https).
	Insecure bool `yaml:"insecure"`
}

// Defaults.
const (
	DefaultServiceName = "wxhub"
	DefaultSampleRatio = 1.0
	defaultPath        = "/v1/traces"
)

// Enabled reports whether c turns tracing on.
func (c Config) Enabled() bool { return strings.TrimSpace(c.Endpoint) != "" }

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.SampleRatio == 0 {
		c.SampleRatio = DefaultSampleRatio
	}
	return c
}

// Validate checks c. Errors wrap ErrConfig and name the key as "tracing.<key>".
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("%w: tracing.sample_ratio: %g, want 0 < ratio <= 1", ErrConfig, c.SampleRatio)
	}
	if !c.Enabled() {
		return nil
	}
	if _, err := c.target(); err != nil {
		return err
	}
	return nil
}

// target is where the exporter posts.
type target struct {
	host, path string
	insecure   bool
}

func (c Config) target() (target, error) {
	ep := strings.TrimSpace(c.Endpoint)
	bad := func(format string, a ...any) (target, error) {
		return target{}, fmt.Errorf("%w: tracing.endpoint: %q: %s", ErrConfig, ep, fmt.Sprintf(format, a...))
	}
	if !strings.Contains(ep, "://") {
		ep = map[bool]string{true: "http://", false: "https://"}[c.Insecure] + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return bad("%v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return bad("no host")
	}
	if u.RawQuery != "" || u.User != nil {
		return bad("query and user info are not supported")
	}
	t := target{host: u.Host, path: u.Path, insecure: u.Scheme == "http"}
	if t.path == "" || t.path == "/" {
		t.path = defaultPath
	}
	return t, nil
}

// Option tunes Setup.
type Option func(*setupOpts)

type setupOpts struct {
	log     *zap.Logger
	timeout time.Duration
}

// WithLogger receives export errors (a collector that is down); default: none.
// They are logged at warn level, at most one a minute.
func WithLogger(l *zap.Logger) Option { return func(o *setupOpts) { o.log = l } }

// WithExportTimeout bounds one export request. Default 10s.
func WithExportTimeout(d time.Duration) Option { return func(o *setupOpts) { o.timeout = d } }

// state is the configured provider; nil while tracing is off.
type state struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

var (
	current atomic.Pointer[state]
	setupMu sync.Mutex
	prop    = propagation.TraceContext{}
)

// Setup turns tracing on when cfg has an endpoint: spans are batched and
// posted as OTLP protobuf to the collector. It also installs the provider and
// the W3C propagator as OpenTelemetry's globals, for libraries that use them.
// With no endpoint it does nothing and returns a shutdown that does nothing.
//
// shutdown flushes the spans not yet exported (bounded by its ctx) and turns
// tracing off again. Calling Setup again replaces the previous provider, which
// is shut down.
func Setup(ctx context.Context, cfg Config, opts ...Option) (shutdown func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	cfg = cfg.WithDefaults()
	o := setupOpts{timeout: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	t, _ := cfg.target() // checked by Validate
	eopts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(t.host),
		otlptracehttp.WithURLPath(t.path),
		otlptracehttp.WithTimeout(o.timeout),
	}
	if t.insecure {
		eopts = append(eopts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, eopts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	ratio := sdktrace.TraceIDRatioBased(cfg.SampleRatio)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// A remote parent's sampled flag is not trusted: hops that do not trace
		// (the gateway before it is wired, connectors in other languages) mark
		// every trace sampled. The ratio of the trace id decides, the same on
		// every hop.
		sdktrace.WithSampler(sdktrace.ParentBased(ratio,
			sdktrace.WithRemoteParentSampled(ratio),
			sdktrace.WithRemoteParentNotSampled(ratio))),
	)
	if o.log != nil {
		otel.SetErrorHandler(&rateLimitedLog{log: o.log.Named("tracing"), every: time.Minute})
	}
	st := &state{provider: tp, tracer: tp.Tracer("github.com/wxhub/wxhub")}

	setupMu.Lock()
	prev := current.Swap(st)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	setupMu.Unlock()
	if prev != nil {
		_ = prev.provider.Shutdown(ctx)
	}
	return func(ctx context.Context) error {
		setupMu.Lock()
		if current.CompareAndSwap(st, nil) {
			otel.SetTracerProvider(noop.NewTracerProvider())
		}
		setupMu.Unlock()
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("tracing: shutdown: %w", err)
		}
		return nil
	}, nil
}

// Enabled reports whether Setup turned tracing on.
func Enabled() bool { return current.Load() != nil }

// End finishes a span; err non-nil marks it failed. Calling it more than once
// is harmless.
type End func(err error)

func noEnd(error) {}

// StartSpan starts the span of one hop (name: "router.route", "sender.send",
// ...) as a child of traceparent, the W3C header of the message being handled
// (bus.HeaderTraceParent; empty or invalid starts a new trace). The returned
// ctx carries the span and, for bus.PublishJSON, a traceparent naming it, so
// messages published under ctx continue the trace. Call end exactly once when
// the hop is done.
//
// With tracing off it only continues the traceparent with a new span id, as
// bus.ContextFromHeader does, and end does nothing.
func StartSpan(ctx context.Context, name, traceparent string, attrs ...attribute.KeyValue) (context.Context, End) {
	return StartSpanState(ctx, name, traceparent, "", attrs...)
}

// StartSpanState is StartSpan with the message's tracestate header
// (bus.HeaderTraceState), which vendors use to carry their own data along.
func StartSpanState(ctx context.Context, name, traceparent, tracestate string, attrs ...attribute.KeyValue) (context.Context, End) {
	st := current.Load()
	if st == nil {
		return bus.WithTraceParent(ctx, bus.ChildTraceParent(traceparent)), noEnd
	}
	if traceparent != "" {
		ctx = prop.Extract(ctx, carrier{tp: traceparent, ts: tracestate})
	}
	ctx, span := st.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	sc := span.SpanContext()
	ctx = bus.WithTraceParent(ctx, bus.SpanContext{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Flags: byte(sc.TraceFlags())}.String())
	var once sync.Once
	return ctx, func(err error) {
		once.Do(func() {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		})
	}
}

// SetAttributes adds attributes to the span in ctx (a result known only at the
// end of the hop). Does nothing when ctx has no recording span.
func SetAttributes(ctx context.Context, attrs ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
}

// String is attribute.String, so callers need not import otel for the common case.
func String(k, v string) attribute.KeyValue { return attribute.String(k, v) }

// Int is attribute.Int.
func Int(k string, v int) attribute.KeyValue { return attribute.Int(k, v) }

// carrier reads the two W3C headers; NATS headers are case-sensitive, so
// propagation.HeaderCarrier (canonical MIME keys) would miss "traceparent".
type carrier struct{ tp, ts string }

func (c carrier) Get(key string) string {
	switch strings.ToLower(key) {
	case bus.HeaderTraceParent:
		return c.tp
	case bus.HeaderTraceState:
		return c.ts
	}
	return ""
}
func (c carrier) Set(string, string) {}
func (c carrier) Keys() []string     { return []string{bus.HeaderTraceParent, bus.HeaderTraceState} }

// rateLimitedLog keeps a dead collector from flooding the log.
type rateLimitedLog struct {
	log   *zap.Logger
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	quiet int
}

func (r *rateLimitedLog) Handle(err error) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < r.every {
		r.quiet++
		r.mu.Unlock()
		return
	}
	skipped := r.quiet
	r.last, r.quiet = now, 0
	r.mu.Unlock()
	r.log.Warn("span export failed", zap.Error(err), zap.Int("suppressed", skipped))
}
