package dashboard_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/schemas"
)

// metricValue reads one gauge or counter series from g; ok=false when absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// wantMetric scrapes g until the metric has the value wanted, for up to 10 s:
// the server updates a consumer's counts asynchronously, so a scrape right
// after a publish may still see the count from before (CI saw 0 for 1 once).
func wantMetric(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok := metricValue(t, g, name, labels)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publishOut(t *testing.T, b *bus.Bus, n int, prefix string) {
	t.Helper()
	ctx := testCtx(t)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		o := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: id, Source: "api/erp", Type: "wxhub.out.message",
			Time: time.Now().UTC(), DataContentType: "application/json",
			Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage,
				Body: []byte(`{"touser":"zhangsan","msgtype":"text","text":{"content":"hi"}}`)}}
		if _, err := b.PublishJSON(ctx, bus.OutSubject("helpdesk"), id, schemas.SchemaOutbound, o); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

func TestBusCollectorFollowsTraffic(t *testing.T) {
	b := openBus(t)
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(dashboard.NewBusCollector(b))
	out := map[string]string{"stream": bus.StreamOut}
	sender := map[string]string{"stream": bus.StreamOut, "consumer": "sender"}

	wantMetric(t, reg, "wxhub_bus_up", nil, 1)
	wantMetric(t, reg, "wxhub_stream_messages", out, 0)

	// Traffic with nobody draining it: the stream grows.
	publishOut(t, b, 5, "m")
	wantMetric(t, reg, "wxhub_stream_messages", out, 5)
	wantMetric(t, reg, "wxhub_stream_last_sequence", out, 5)

	// A consumer appears and lags by everything.
	cons, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamOut, jetstream.ConsumerConfig{
		Durable: "sender", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: bus.SubjectOutAll, MaxAckPending: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantMetric(t, reg, "wxhub_consumer_pending", sender, 5)
	wantMetric(t, reg, "wxhub_consumer_ack_pending", sender, 0)

	// It takes 3, acks 2, keeps 1 in flight.
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d, want 3", len(msgs))
	}
	for _, m := range msgs[:2] {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantMetric(t, reg, "wxhub_consumer_pending", sender, 2)
	wantMetric(t, reg, "wxhub_consumer_ack_pending", sender, 1)
	if v, ok := metricValue(t, reg, "wxhub_consumer_last_active_timestamp_seconds", sender); !ok || time.Since(time.UnixMilli(int64(v*1000))) > time.Minute {
		t.Errorf("last active %v (present %v), want about now", v, ok)
	}

	// A nak with redelivery shows as redelivered.
	if err := msgs[2].Nak(); err != nil {
		t.Fatal(err)
	}
	got := 0
	eventually(t, 10*time.Second, "the nakked message redelivered", func() bool {
		again, err := cons.Fetch(3, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range again.Messages() { // held, not acked: in flight
			if md, _ := m.Metadata(); md != nil && md.NumDelivered > 1 {
				got++
			}
		}
		return got > 0
	})
	wantMetric(t, reg, "wxhub_consumer_redelivered", sender, 1)

	// Dead letters by stage.
	for i, stage := range []string{"sender", "sender", "connector:erp"} {
		if err := b.PublishDeadLetter(ctx, fmt.Sprintf("dl-%d", i), schemas.DeadLetterData{
			Stage: stage, Reason: "boom", Attempts: 3, Subject: bus.OutSubject("helpdesk"), Original: []byte(`{}`),
		}); err != nil {
			t.Fatal(err)
		}
	}
	wantMetric(t, reg, "wxhub_dlq_messages", map[string]string{"stage": "sender"}, 2)
	wantMetric(t, reg, "wxhub_dlq_messages", map[string]string{"stage": "connector:erp"}, 1)
	wantMetric(t, reg, "wxhub_stream_messages", map[string]string{"stream": bus.StreamDLQ}, 3)

	// A route consumer per connector is exported under its durable name.
	if _, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamRoute, jetstream.ConsumerConfig{
		Durable: "wxhub_erp_0", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: bus.RouteFilter("erp"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishJSON(ctx, bus.RouteSubject("erp", 3), "r1", schemas.SchemaEvent, schemas.Event{ID: "r1"}); err != nil {
		t.Fatal(err)
	}
	wantMetric(t, reg, "wxhub_consumer_pending", map[string]string{"stream": bus.StreamRoute, "consumer": "wxhub_erp"}, 1)
	// The stream's anchor is not work: the depth counts the one event.
	if err := b.AnchorRoute(ctx); err != nil {
		t.Fatal(err)
	}
	wantMetric(t, reg, "wxhub_stream_messages", map[string]string{"stream": bus.StreamRoute}, 1)

	// The broker going away shows as wxhub_bus_up 0, not as a hung scrape.
	b.Conn().Close()
	start := time.Now()
	wantMetric(t, reg, "wxhub_bus_up", nil, 0)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("scrape of a dead bus took %s", d)
	}
}

// A configured connector whose consumers are missing keeps its series: the
// work waiting on its subjects, and a last-active time of "never", so that
// the stalled alert fires instead of going silent.
func TestBusCollectorKeepsAConfiguredConnectorWithoutConsumer(t *testing.T) {
	b := openBus(t)
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(dashboard.NewBusCollector(b, "erp", "echo"))
	erp := map[string]string{"stream": bus.StreamRoute, "consumer": "wxhub_erp"}
	echo := map[string]string{"stream": bus.StreamRoute, "consumer": "wxhub_echo"}
	for i := range 3 {
		ev := &schemas.Event{SpecVersion: schemas.SpecVersion, ID: fmt.Sprintf("ev-%d", i), Source: "wecom/helpdesk", Type: "wxhub.in.text",
			Time: time.Now().UTC(), DataContentType: "application/json",
			Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: fmt.Sprintf("u%d", i), MsgType: "text", Content: "订单 1"}}
		if _, err := b.PublishRoute(ctx, "erp", 0, ev); err != nil {
			t.Fatal(err)
		}
	}
	wantMetric(t, reg, "wxhub_consumer_pending", erp, 3)
	wantMetric(t, reg, "wxhub_consumer_last_active_timestamp_seconds", erp, 0)
	wantMetric(t, reg, "wxhub_consumer_pending", echo, 0)
}

// BusMetric names exactly BusCollector's series (they are not shared between
// processes: every process reads the same JetStream state).
func TestBusMetricNamesTheCollectorsSeries(t *testing.T) {
	ch := make(chan *prometheus.Desc, 32)
	dashboard.NewBusCollector(nil).Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	n := 0
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil || !dashboard.BusMetric(m[1]) {
			t.Errorf("%s: not a BusMetric", d)
		}
		n++
	}
	if n == 0 || dashboard.BusMetric("wxhub_sender_sends_total") {
		t.Fatal("BusMetric does not tell the collector's series from the others")
	}
}
