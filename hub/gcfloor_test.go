package hub_test

import (
	"testing"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub"
)

func TestGCHeapFloor(t *testing.T) {
	mib := func(n int) *int { return &n }
	external := bus.Config{URL: "nats://10.0.0.1:4222"}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		nats  bus.Config
		floor *int
		want  uint64
	}{
		{name: "embedded NATS: the default", want: hub.DefaultGCHeapFloorMiB},
		{name: "external NATS: off", nats: external, want: 0},
		{name: "explicit floor wins over the default", floor: mib(256), want: 256},
		{name: "explicit floor on external NATS", nats: external, floor: mib(32), want: 32},
		{name: "explicit 0 turns it off", floor: mib(0), want: 0},
		{name: "GOGC set: off", env: map[string]string{"GOGC": "200"}, want: 0},
		{name: "GOGC=off set: off", env: map[string]string{"GOGC": "off"}, floor: mib(128), want: 0},
		{name: "GOMEMLIMIT set: off", env: map[string]string{"GOMEMLIMIT": "400MiB"}, floor: mib(128), want: 0},
		{name: "GOGC empty is unset, as for the runtime", env: map[string]string{"GOGC": ""}, want: hub.DefaultGCHeapFloorMiB},
		{name: "other variables do not matter", env: map[string]string{"GODEBUG": "gctrace=1"}, want: hub.DefaultGCHeapFloorMiB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{NATS: tc.nats, Runtime: config.Runtime{GCHeapFloorMiB: tc.floor}}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			got, why := hub.GCHeapFloor(cfg, lookup)
			if got != tc.want || why == "" {
				t.Fatalf("GCHeapFloor = %d (%q), want %d", got, why, tc.want)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	mib := func(n int) *int { return &n }
	external := bus.Config{URL: "nats://10.0.0.1:4222"}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		nats  bus.Config
		limit *int
		want  uint64
	}{
		{name: "embedded NATS: the default", want: hub.DefaultMemoryLimitMiB},
		{name: "external NATS: none", nats: external, want: 0},
		{name: "explicit limit wins", limit: mib(512), want: 512},
		{name: "explicit limit on external NATS", nats: external, limit: mib(256), want: 256},
		{name: "explicit 0 turns it off", limit: mib(0), want: 0},
		{name: "GOMEMLIMIT set: the operator's", env: map[string]string{"GOMEMLIMIT": "1GiB"}, limit: mib(512), want: 0},
		{name: "GOGC set: the operator's", env: map[string]string{"GOGC": "100"}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{NATS: tc.nats, Runtime: config.Runtime{MemoryLimitMiB: tc.limit}}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			if got, why := hub.MemoryLimit(cfg, lookup); got != tc.want || why == "" {
				t.Fatalf("MemoryLimit = %d (%q), want %d", got, why, tc.want)
			}
		})
	}
}
