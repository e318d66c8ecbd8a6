// Package sharedmetrics puts each process's wxhub_ counters and gauges on
// the bus, so that the dashboard shows the rates of components that run in
// other processes (`--only`, one Deployment per component): every process
// puts a snapshot into the KV bucket wxhub_metrics under its own key every few
// seconds (Publish), and the dashboard's Gatherer adds the other processes'
// snapshots, labelled process="...", to its own registry's families.
// See docs/metrics.md ("Rates on the dashboard").
package sharedmetrics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/wxhub/wxhub/bus"
)

// Bucket is the KV bucket of the snapshots: one key per process.
const Bucket = bus.BucketMetrics

// DefaultEvery is how often a process puts its snapshot.
const DefaultEvery = 5 * time.Second

// ttl drops the snapshot of a process that stopped putting it (killed): its
// series then leave the dashboard.
const ttl = 30 * time.Second

// LabelProcess names the process a shared series comes from.
const LabelProcess = "process"

// snapshot is one process's counters and gauges at At (its own clock).
type snapshot struct {
	Process  string   `json:"process"`
	At       int64    `json:"at_ms"`
	Families []family `json:"families"`
}

type family struct {
	Name   string   `json:"name"`
	Help   string   `json:"help,omitempty"`
	Gauge  bool     `json:"gauge,omitempty"` // else a counter
	Series []series `json:"series"`
}

type series struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// Key is a new process key: the host, the pid and a random suffix.
func Key() string {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return bus.SafeKey(fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:])))
}

// open returns the bucket, creating it when it does not exist yet.
func open(ctx context.Context, b *bus.Bus) (jetstream.KeyValue, error) {
	kv, err := b.JS().KeyValue(ctx, Bucket)
	if err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = b.JS().CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "wxhub: each process's counters, for the dashboard's rates",
		History: 1, TTL: ttl, Storage: jetstream.MemoryStorage, Replicas: b.Config().Replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return b.JS().KeyValue(ctx, Bucket)
	}
	return kv, err
}

// Publish puts g's wxhub_ counters and gauges under key every every (default
// DefaultEvery) until ctx ends, then deletes the key. process is the label
// value the dashboard shows. Failures are logged at debug and retried on the
// next tick: the dashboard's rates are not worth a component's health.
func Publish(ctx context.Context, b *bus.Bus, g prometheus.Gatherer, key, process string, every time.Duration, log *zap.Logger) {
	if every <= 0 {
		every = DefaultEvery
	}
	if log == nil {
		log = zap.NewNop()
	}
	var kv jetstream.KeyValue
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, every)
		if kv == nil {
			var err error
			if kv, err = open(actx, b); err != nil {
				kv = nil
				log.Debug("shared metrics: bucket", zap.Error(err))
			}
		}
		if kv != nil {
			if err := put(actx, kv, g, key, process); err != nil {
				log.Debug("shared metrics: put", zap.Error(err))
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			if kv != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_ = kv.Delete(dctx, key)
				cancel()
			}
			return
		case <-tick.C:
		}
	}
}

func put(ctx context.Context, kv jetstream.KeyValue, g prometheus.Gatherer, key, process string) error {
	fams, err := g.Gather()
	if err != nil && len(fams) == 0 {
		return err
	}
	snap := snapshot{Process: process, At: time.Now().UnixMilli()}
	for _, f := range fams {
		t := f.GetType()
		if !strings.HasPrefix(f.GetName(), "wxhub_") || (t != dto.MetricType_COUNTER && t != dto.MetricType_GAUGE) {
			continue
		}
		fam := family{Name: f.GetName(), Help: f.GetHelp(), Gauge: t == dto.MetricType_GAUGE}
		for _, m := range f.GetMetric() {
			s := series{Value: m.GetCounter().GetValue()}
			if fam.Gauge {
				s.Value = m.GetGauge().GetValue()
			}
			if len(m.GetLabel()) > 0 {
				s.Labels = make(map[string]string, len(m.GetLabel()))
				for _, l := range m.GetLabel() {
					s.Labels[l.GetName()] = l.GetValue()
				}
			}
			fam.Series = append(fam.Series, s)
		}
		snap.Families = append(snap.Families, fam)
	}
	raw, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, key, raw)
	return err
}

// Gatherer is local's families plus every other process's snapshot (not the
// one under self, which local already has), each series labelled with
// LabelProcess and stamped with the snapshot's time, so that rates are
// computed on the publishing process's clock.
type Gatherer struct {
	local prometheus.Gatherer
	b     *bus.Bus
	self  string
}

// NewGatherer returns the merged gatherer; self is this process's key.
func NewGatherer(local prometheus.Gatherer, b *bus.Bus, self string) *Gatherer {
	return &Gatherer{local: local, b: b, self: self}
}

// readTimeout bounds one read of the bucket.
const readTimeout = 3 * time.Second

// Gather implements prometheus.Gatherer. The bucket being unreadable is not
// an error: the local families are returned alone.
func (g *Gatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := g.local.Gather()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	remote := g.remote(ctx)
	if len(remote) == 0 {
		return fams, err
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	for _, snap := range remote {
		for _, rf := range snap.Families {
			typ := dto.MetricType_COUNTER
			if rf.Gauge {
				typ = dto.MetricType_GAUGE
			}
			f := byName[rf.Name]
			switch {
			case f == nil:
				f = &dto.MetricFamily{Name: proto.String(rf.Name), Help: proto.String(rf.Help), Type: typ.Enum()}
				byName[rf.Name] = f
				fams = append(fams, f)
			case f.GetType() != typ:
				continue // another metric of that name: not ours to merge
			}
			for _, s := range rf.Series {
				m := &dto.Metric{TimestampMs: proto.Int64(snap.At)}
				for k, v := range s.Labels {
					if k != LabelProcess {
						m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(k), Value: proto.String(v)})
					}
				}
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(LabelProcess), Value: proto.String(snap.Process)})
				// Sorted by name as Prometheus gives them: the labels come from a
				// map, and a reader keying series by their labels needs one order.
				slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
				if rf.Gauge {
					m.Gauge = &dto.Gauge{Value: proto.Float64(s.Value)}
				} else {
					m.Counter = &dto.Counter{Value: proto.Float64(s.Value)}
				}
				f.Metric = append(f.Metric, m)
			}
		}
	}
	return fams, err
}

// remote reads the other processes' snapshots; expired ones are gone.
func (g *Gatherer) remote(ctx context.Context) []snapshot {
	kv, err := g.b.JS().KeyValue(ctx, Bucket)
	if err != nil {
		return nil
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil
	}
	var out []snapshot
	for k := range keys.Keys() {
		if k == g.self {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var s snapshot
		if json.Unmarshal(e.Value(), &s) == nil && s.Process != "" {
			out = append(out, s)
		}
	}
	return out
}
