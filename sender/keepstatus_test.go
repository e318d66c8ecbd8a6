package sender

import (
	"testing"

	"github.com/wxhub/wxhub/schemas"
)

func TestKeepsStatus(t *testing.T) {
	answer := schemas.Outbound{ID: "ev-1/m0", Source: "connector/erp", Data: schemas.OutboundData{InReplyTo: "ev-1"}}
	push := schemas.Outbound{ID: "m1", Source: "api/erp"}
	for _, tt := range []struct {
		name   string
		out    schemas.Outbound
		replay bool
		status string
		want   bool
	}{
		{"push queued", push, false, schemas.StatusQueued, true},
		{"push deferred", push, false, schemas.StatusDeferred, true},
		{"push sent", push, false, schemas.StatusSent, true},
		{"push failed", push, false, schemas.StatusFailed, true},
		{"answer queued", answer, false, schemas.StatusQueued, false},
		{"answer deferred", answer, false, schemas.StatusDeferred, false},
		{"answer sent", answer, false, schemas.StatusSent, false},
		{"answer failed", answer, false, schemas.StatusFailed, true},
		{"answer dropped by WeCom", answer, false, schemas.StatusDropped, true},
		{"replayed answer sent", answer, true, schemas.StatusSent, true},
	} {
		if got := keepsStatus(tt.out, tt.replay, tt.status); got != tt.want {
			t.Errorf("%s: keepsStatus = %v, want %v", tt.name, got, tt.want)
		}
	}
}
