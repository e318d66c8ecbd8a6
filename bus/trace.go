package bus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/nats-io/nats.go"
)

// ErrTraceParent reports a traceparent header that is not W3C Trace Context.
var ErrTraceParent = errors.New("bus: invalid traceparent")

// SpanContext is a parsed W3C traceparent.
type SpanContext struct {
	TraceID string // 32 lower-case hex digits, not all zero
	SpanID  string // 16 lower-case hex digits, not all zero
	Flags   byte   // bit 0: sampled
}

// String renders the version-00 traceparent.
func (sc SpanContext) String() string {
	const hexDigits = "0123456789abcdef"
	return "00-" + sc.TraceID + "-" + sc.SpanID + "-" + string([]byte{hexDigits[sc.Flags>>4], hexDigits[sc.Flags&0xf]})
}

// Child keeps the trace id and draws a new span id.
func (sc SpanContext) Child() SpanContext {
	sc.SpanID = randHex(8)
	return sc
}

// NewTraceParent starts a new trace that nobody records (flags 00): it is the
// fallback when no tracer started a span (tracing off), and the ids still tie
// the hops together for the dashboard. A sampled flag would also be false, and
// it costs: the NATS server parses every header of a message whose
// traceparent is sampled, looking for its own message tracing.
func NewTraceParent() string {
	return SpanContext{TraceID: randHex(16), SpanID: randHex(8)}.String()
}

// ParseTraceParent validates s per W3C Trace Context. Versions above 00 are
// accepted when their first four fields parse, as the spec asks.
func ParseTraceParent(s string) (SpanContext, error) {
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') {
		return SpanContext{}, fmt.Errorf("%w: %q: want 00-<32 hex>-<16 hex>-<2 hex>", ErrTraceParent, s)
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return SpanContext{}, fmt.Errorf("%w: %q: misplaced dash", ErrTraceParent, s)
	}
	version, traceID, spanID, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	for _, f := range []string{version, traceID, spanID, flags} {
		if !isLowerHex(f) {
			return SpanContext{}, fmt.Errorf("%w: %q: not lower-case hex", ErrTraceParent, s)
		}
	}
	if version == "ff" {
		return SpanContext{}, fmt.Errorf("%w: %q: version ff is forbidden", ErrTraceParent, s)
	}
	if version == "00" && len(s) != 55 {
		return SpanContext{}, fmt.Errorf("%w: %q: version 00 has exactly 4 fields", ErrTraceParent, s)
	}
	if allZero(traceID) || allZero(spanID) {
		return SpanContext{}, fmt.Errorf("%w: %q: all-zero id", ErrTraceParent, s)
	}
	fb, _ := hex.DecodeString(flags)
	return SpanContext{TraceID: traceID, SpanID: spanID, Flags: fb[0]}, nil
}

// ChildTraceParent continues the trace of tp with a new span id; an invalid or
// empty tp starts a new trace rather than failing, because tracing must never
// stop a message.
func ChildTraceParent(tp string) string {
	if tp == "" {
		return NewTraceParent() // every callback from WeChat: no need to build a parse error
	}
	sc, err := ParseTraceParent(tp)
	if err != nil {
		return NewTraceParent()
	}
	return sc.Child().String()
}

type traceKey struct{}

// WithTraceParent returns ctx carrying tp; PublishJSON puts it on the message.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceKey{}, tp)
}

// TraceParentFrom returns the traceparent carried by ctx, or "".
func TraceParentFrom(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp
}

// ContextFromHeader continues the trace of a received message: ctx gets a child
// of the message's traceparent, or a new trace when it has none.
func ContextFromHeader(ctx context.Context, h nats.Header) context.Context {
	return WithTraceParent(ctx, ChildTraceParent(h.Get(HeaderTraceParent)))
}

// randHex draws n random bytes as hex, not all zero (W3C). Trace ids need to
// be unique, not secret: math/rand/v2 (ChaCha8, per-thread state) costs no
// system call, unlike crypto/rand, and it runs for every message.
func randHex(n int) string {
	var buf [16]byte
	b := buf[:n]
	for {
		for i := 0; i < n; i += 8 {
			v := rand.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		for _, c := range b {
			if c != 0 {
				return hex.EncodeToString(b)
			}
		}
	}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
