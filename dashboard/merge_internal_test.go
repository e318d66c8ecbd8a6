package dashboard

import (
	"testing"
	"time"
)

func TestMergePartitions(t *testing.T) {
	now := time.Now()
	recent := now.Add(-time.Second)
	got := mergePartitions([]ConsumerState{
		{Stream: "WXHUB_ROUTE", Name: "wxhub_erp_0", Connector: "erp", Pending: 2, AckPending: 1, MaxAck: 1},
		{Stream: "WXHUB_ROUTE", Name: "wxhub_erp_1", Connector: "erp", Pending: 3, MaxAck: 1, LastActive: &recent},
		{Stream: "WXHUB_OUT", Name: "sender", Pending: 7},
		{Stream: "WXHUB_ROUTE", Name: "wxhub_help_0", Connector: "help"},
	}, now)
	if len(got) != 3 {
		t.Fatalf("rows %d, want 3: %+v", len(got), got)
	}
	erp := got[0]
	if erp.Name != "wxhub_erp" || erp.Partitions != 2 || erp.Pending != 5 || erp.AckPending != 1 || erp.MaxAck != 2 || erp.Health != "online" {
		t.Fatalf("erp row %+v", erp)
	}
}
