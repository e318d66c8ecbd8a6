package dashboard

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/bus"
)

// collectTimeout bounds one scrape's JetStream requests; a stuck broker must
// not hang Prometheus, it shows as wxhub_bus_up 0.
const collectTimeout = 5 * time.Second

var (
	descUp = prometheus.NewDesc("wxhub_bus_up",
		"1 when the last scrape could read JetStream state, else 0.", nil, nil)
	descStreamMsgs = prometheus.NewDesc("wxhub_stream_messages",
		"Messages stored in a stream (WXHUB_ROUTE: work not yet acked by its connector; its anchor message is left out).", []string{"stream"}, nil)
	descStreamBytes = prometheus.NewDesc("wxhub_stream_bytes",
		"Bytes stored in a stream.", []string{"stream"}, nil)
	descStreamLastSeq = prometheus.NewDesc("wxhub_stream_last_sequence",
		"Last sequence of a stream: its rate is the stream's publish rate.", []string{"stream"}, nil)
	descPending = prometheus.NewDesc("wxhub_consumer_pending",
		"Messages matching a consumer's filter not yet delivered to it (its lag).", []string{"stream", "consumer"}, nil)
	descAckPending = prometheus.NewDesc("wxhub_consumer_ack_pending",
		"Messages delivered to a consumer and not yet acked (in flight).", []string{"stream", "consumer"}, nil)
	descRedelivered = prometheus.NewDesc("wxhub_consumer_redelivered",
		"Messages redelivered to a consumer and not yet acked.", []string{"stream", "consumer"}, nil)
	descWaiting = prometheus.NewDesc("wxhub_consumer_waiting",
		"Pull requests waiting on a consumer: above 0 means workers are connected and idle.", []string{"stream", "consumer"}, nil)
	descLastActive = prometheus.NewDesc("wxhub_consumer_last_active_timestamp_seconds",
		"Unix time of a consumer's last delivery or ack.", []string{"stream", "consumer"}, nil)
	descDLQ = prometheus.NewDesc("wxhub_dlq_messages",
		"Dead letters in WXHUB_DLQ by stage.", []string{"stage"}, nil)
)

// BusMetric reports whether name is a series of BusCollector: JetStream
// state, the same seen from any process.
func BusMetric(name string) bool {
	switch name {
	case "wxhub_bus_up", "wxhub_stream_messages", "wxhub_stream_bytes", "wxhub_stream_last_sequence",
		"wxhub_consumer_pending", "wxhub_consumer_ack_pending", "wxhub_consumer_redelivered",
		"wxhub_consumer_waiting", "wxhub_consumer_last_active_timestamp_seconds", "wxhub_dlq_messages":
		return true
	}
	return false
}

// BusCollector exports stream depths, consumer lag and the DLQ size, read
// from JetStream at scrape time so the numbers are never stale.
type BusCollector struct {
	b          *bus.Bus
	connectors []string
}

// NewBusCollector returns a collector for b; register it once. connectors
// are the configured connectors: their series are exported even while their
// consumers are missing (no process ever started them, or NATS lost them), so
// that the stalled alert can fire.
func NewBusCollector(b *bus.Bus, connectors ...string) *BusCollector {
	return &BusCollector{b: b, connectors: connectors}
}

// Describe implements prometheus.Collector.
func (c *BusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descStreamMsgs, descStreamBytes, descStreamLastSeq,
		descPending, descAckPending, descRedelivered, descWaiting, descLastActive, descDLQ} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *BusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	st, err := readBusState(ctx, c.b, c.connectors...)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, s := range st.Streams {
		ch <- prometheus.MustNewConstMetric(descStreamMsgs, prometheus.GaugeValue, float64(s.Messages), s.Name)
		ch <- prometheus.MustNewConstMetric(descStreamBytes, prometheus.GaugeValue, float64(s.Bytes), s.Name)
		ch <- prometheus.MustNewConstMetric(descStreamLastSeq, prometheus.CounterValue, float64(s.LastSeq), s.Name)
	}
	for _, cs := range st.Consumers {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(cs.Pending), cs.Stream, cs.Name)
		ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(cs.AckPending), cs.Stream, cs.Name)
		ch <- prometheus.MustNewConstMetric(descRedelivered, prometheus.GaugeValue, float64(cs.Redelivered), cs.Stream, cs.Name)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(cs.Waiting), cs.Stream, cs.Name)
		switch {
		case cs.LastActive != nil:
			ch <- prometheus.MustNewConstMetric(descLastActive, prometheus.GaugeValue, float64(cs.LastActive.UnixMilli())/1000, cs.Stream, cs.Name)
		case cs.Missing:
			ch <- prometheus.MustNewConstMetric(descLastActive, prometheus.GaugeValue, 0, cs.Stream, cs.Name) // never: the alert's age is "forever"
		}
	}
	for stage, n := range st.DLQ.ByStage {
		ch <- prometheus.MustNewConstMetric(descDLQ, prometheus.GaugeValue, float64(n), stage)
	}
}

// StreamState is one stream's size.
type StreamState struct {
	Name      string    `json:"name"`
	Messages  uint64    `json:"messages"`
	Bytes     uint64    `json:"bytes"`
	FirstSeq  uint64    `json:"first_seq"`
	LastSeq   uint64    `json:"last_seq"`
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	Consumers int       `json:"consumers"`
}

// ConsumerState is one durable consumer: a connector, the router or the sender.
type ConsumerState struct {
	Stream      string     `json:"stream"`
	Name        string     `json:"name"`
	Filter      string     `json:"filter,omitempty"`
	Connector   string     `json:"connector,omitempty"` // for WXHUB_ROUTE consumers: from the filter
	Pending     uint64     `json:"pending"`             // not yet delivered (lag)
	AckPending  int        `json:"ack_pending"`         // delivered, not acked (in flight)
	Redelivered int        `json:"redelivered"`
	Waiting     int        `json:"waiting"` // pull requests waiting: workers online and idle
	MaxAck      int        `json:"max_ack_pending"`
	LastActive  *time.Time `json:"last_active,omitempty"`
	Health      string     `json:"health"` // online, idle, stalled, never
	// Partitions is how many per-partition consumers this row adds up (a
	// connector has one durable consumer per partition of its subjects).
	Partitions int `json:"partitions,omitempty"`
	// Missing: a configured connector without a consumer (nobody ever started
	// it, or its consumers are lost); Pending is then the work waiting on its subjects.
	Missing bool `json:"missing,omitempty"`
}

// DLQState counts dead letters.
type DLQState struct {
	Total   uint64            `json:"total"`
	ByStage map[string]uint64 `json:"by_stage"`
}

// BusState is what JetStream says about the hub's queues.
type BusState struct {
	Streams   []StreamState   `json:"streams"`
	Consumers []ConsumerState `json:"consumers"`
	DLQ       DLQState        `json:"dlq"`
}

var streamNames = []string{bus.StreamIn, bus.StreamRoute, bus.StreamOut, bus.StreamDLQ}

// stalledAfter: a consumer with work and no activity for this long is stalled.
const stalledAfter = time.Minute

// readBusState reads every stream and consumer. It returns what it could read
// together with the first error, so one missing stream does not blank the rest.
func readBusState(ctx context.Context, b *bus.Bus, connectors ...string) (BusState, error) {
	st := BusState{DLQ: DLQState{ByStage: map[string]uint64{}}}
	var firstErr error
	keep := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	now := time.Now()
	for _, name := range streamNames {
		s, err := b.JS().Stream(ctx, name)
		if err != nil {
			keep(err)
			continue
		}
		var opts []jetstream.StreamInfoOpt
		switch name {
		case bus.StreamDLQ:
			opts = append(opts, jetstream.WithSubjectFilter(bus.SubjectDLQAll))
		case bus.StreamRoute:
			opts = append(opts, jetstream.WithSubjectFilter(bus.SubjectRouteAnchor))
		}
		info, err := s.Info(ctx, opts...)
		if err != nil {
			keep(err)
			continue
		}
		ss := info.State
		if name == bus.StreamRoute { // its depth is work to do, not the anchor (bus.KeepRouteAnchor)
			ss.Msgs = bus.RouteWork(ss)
		}
		st.Streams = append(st.Streams, StreamState{
			Name: name, Messages: ss.Msgs, Bytes: ss.Bytes, FirstSeq: ss.FirstSeq, LastSeq: ss.LastSeq,
			FirstTime: ss.FirstTime, LastTime: ss.LastTime, Consumers: ss.Consumers,
		})
		if name == bus.StreamDLQ {
			st.DLQ.Total = ss.Msgs
			for subj, n := range ss.Subjects {
				st.DLQ.ByStage[strings.TrimPrefix(subj, bus.SubjectDLQPrefix+".")] += n
			}
		}
		lister := s.ListConsumers(ctx)
		var consumers []ConsumerState
		for ci := range lister.Info() {
			consumers = append(consumers, consumerState(name, ci, now))
		}
		if err := lister.Err(); err != nil {
			keep(err)
		}
		merged := mergePartitions(consumers, now)
		if name == bus.StreamRoute {
			merged = append(merged, missingConnectors(ctx, s, merged, connectors, keep)...)
		}
		st.Consumers = append(st.Consumers, merged...)
	}
	return st, firstErr
}

// missingConnectors are rows for the configured connectors that have no
// consumer, with the work waiting on their subjects: stalled when there is some.
func missingConnectors(ctx context.Context, s jetstream.Stream, have []ConsumerState, connectors []string, keep func(error)) []ConsumerState {
	var out []ConsumerState
	for _, name := range connectors {
		if slices.ContainsFunc(have, func(c ConsumerState) bool { return c.Connector == name }) {
			continue
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.RouteFilter(name)))
		if err != nil {
			keep(err)
			continue
		}
		var pending uint64
		for _, n := range info.State.Subjects {
			pending += n
		}
		cs := ConsumerState{Stream: bus.StreamRoute, Name: "wxhub_" + name, Filter: bus.RouteFilter(name), Connector: name,
			Pending: pending, Missing: true, Health: "never"}
		if pending > 0 {
			cs.Health = "stalled"
		}
		out = append(out, cs)
	}
	return out
}

// mergePartitions adds up a connector's per-partition consumers into one row:
// operations asks how far behind the ERP connector is, not partition 7 of it.
func mergePartitions(cs []ConsumerState, now time.Time) []ConsumerState {
	var out []ConsumerState
	byConnector := map[string]int{}
	for _, c := range cs {
		if c.Connector == "" {
			out = append(out, c)
			continue
		}
		i, ok := byConnector[c.Connector]
		if !ok {
			c.Name = "wxhub_" + c.Connector
			c.Filter = bus.RouteFilter(c.Connector)
			c.Partitions = 1
			byConnector[c.Connector] = len(out)
			out = append(out, c)
			continue
		}
		m := &out[i]
		m.Partitions++
		m.Pending += c.Pending
		m.AckPending += c.AckPending
		m.Redelivered += c.Redelivered
		m.Waiting += c.Waiting
		m.MaxAck += c.MaxAck
		if c.LastActive != nil && (m.LastActive == nil || c.LastActive.After(*m.LastActive)) {
			m.LastActive = c.LastActive
		}
	}
	for i := range out {
		out[i].Health = health(out[i], now)
	}
	return out
}

func consumerState(stream string, ci *jetstream.ConsumerInfo, now time.Time) ConsumerState {
	cs := ConsumerState{
		Stream: stream, Name: ci.Name, Filter: ci.Config.FilterSubject,
		Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered,
		Waiting: ci.NumWaiting, MaxAck: ci.Config.MaxAckPending,
	}
	if cs.Filter == "" && len(ci.Config.FilterSubjects) == 1 {
		cs.Filter = ci.Config.FilterSubjects[0]
	}
	if stream == bus.StreamRoute && strings.HasPrefix(cs.Filter, bus.SubjectRoutePrefix+".") {
		cs.Connector = strings.SplitN(strings.TrimPrefix(cs.Filter, bus.SubjectRoutePrefix+"."), ".", 2)[0]
	}
	for _, t := range []*time.Time{ci.Delivered.Last, ci.AckFloor.Last} {
		if t != nil && (cs.LastActive == nil || t.After(*cs.LastActive)) {
			cs.LastActive = t
		}
	}
	cs.Health = health(cs, now)
	return cs
}

// health: online when workers are pulling or were active within stalledAfter;
// stalled when work waits and nobody has touched it for longer; else idle.
func health(cs ConsumerState, now time.Time) string {
	recent := cs.LastActive != nil && now.Sub(*cs.LastActive) < stalledAfter
	switch {
	case cs.Waiting > 0 || recent:
		return "online"
	case cs.Pending > 0 || cs.AckPending > 0:
		return "stalled"
	case cs.LastActive == nil:
		return "never"
	default:
		return "idle"
	}
}
