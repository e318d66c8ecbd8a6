package bus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/wxhub/wxhub/bus"
)

func TestParseTraceParent(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		want    bus.SpanContext
		wantErr bool
	}{
		{name: "w3c example", given: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			want: bus.SpanContext{TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Flags: 1}},
		{name: "future version with extra field", given: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra",
			want: bus.SpanContext{TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"}},
		{name: "empty", given: "", wantErr: true},
		{name: "upper case", given: "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", wantErr: true},
		{name: "zero trace id", given: "00-00000000000000000000000000000000-b7ad6b7169203331-01", wantErr: true},
		{name: "zero span id", given: "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", wantErr: true},
		{name: "version ff", given: "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", wantErr: true},
		{name: "v00 trailing data", given: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", wantErr: true},
		{name: "bad dash", given: "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bus.ParseTraceParent(tt.given)
			if tt.wantErr {
				if !errors.Is(err, bus.ErrTraceParent) {
					t.Fatalf("err %v, want ErrTraceParent", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestTraceHelpers(t *testing.T) {
	tp := bus.NewTraceParent()
	sc, err := bus.ParseTraceParent(tp)
	if err != nil {
		t.Fatalf("NewTraceParent %q: %v", tp, err)
	}
	if sc.Flags != 0 {
		// Nothing records a trace started here; a sampled flag would make the
		// NATS server parse every header of every message for its own tracing.
		t.Fatalf("NewTraceParent %q: flags %02x, want 00 (not sampled)", tp, sc.Flags)
	}
	child := bus.ChildTraceParent(tp)
	cc, err := bus.ParseTraceParent(child)
	if err != nil || cc.TraceID != sc.TraceID || cc.SpanID == sc.SpanID {
		t.Fatalf("child %q of %q: %v", child, tp, err)
	}
	if _, err := bus.ParseTraceParent(bus.ChildTraceParent("garbage")); err != nil {
		t.Fatalf("child of garbage must be a new valid trace: %v", err)
	}
	ctx := bus.WithTraceParent(context.Background(), tp)
	if bus.TraceParentFrom(ctx) != tp || bus.TraceParentFrom(context.Background()) != "" {
		t.Fatal("ctx carry")
	}
	h := nats.Header{}
	h.Set(bus.HeaderTraceParent, tp)
	got, _ := bus.ParseTraceParent(bus.TraceParentFrom(bus.ContextFromHeader(context.Background(), h)))
	if got.TraceID != sc.TraceID {
		t.Fatal("ContextFromHeader lost the trace id")
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct{ name, given, want string }{
		{"in text", bus.InSubject("wecom", "helpdesk", "text"), "wxhub.in.wecom.helpdesk.text"},
		{"in event", bus.InSubject("mp", "shop", "event.click"), "wxhub.in.mp.shop.event.click"},
		{"in unsafe app", bus.InSubject("wecom", "a.b*c", ""), "wxhub.in.wecom.a_b_c._"},
		{"route", bus.RouteSubject("erp", 7), "wxhub.route.erp.7"},
		{"route filter", bus.RouteFilter("erp"), "wxhub.route.erp.>"},
		{"out", bus.OutSubject("helpdesk"), "wxhub.out.helpdesk"},
		{"dlq", bus.DLQSubject("connector:erp"), "wxhub.dlq.connector:erp"},
	}
	for _, tt := range tests {
		if tt.given != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.given, tt.want)
		}
	}
	if p, ok := bus.PartitionOf("wxhub.route.erp.7"); !ok || p != 7 {
		t.Errorf("PartitionOf: %d %v", p, ok)
	}
	if _, ok := bus.PartitionOf("wxhub.out.x"); ok {
		t.Error("PartitionOf accepted a non-route subject")
	}
}

func TestPartition(t *testing.T) {
	seen := map[int]bool{}
	for _, u := range []string{"zhangsan", "lisi", "wangwu", "zhaoliu", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "a", "b", "c"} {
		p := bus.Partition(u, 16)
		if p < 0 || p >= 16 || p != bus.Partition(u, 16) {
			t.Fatalf("Partition(%q) = %d", u, p)
		}
		seen[p] = true
	}
	if len(seen) < 3 {
		t.Errorf("poor spread: %v", seen)
	}
	if bus.Partition("x", 0) != 0 || bus.Partition("x", 1) != 0 {
		t.Error("partitions < 2 must map to 0")
	}
}
