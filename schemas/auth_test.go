package schemas_test

import (
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
)

func TestNewAuthChallenge(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.FixedZone("CST", 8*3600))
	a := schemas.NewAuthChallenge("helpdesk", "dashboard", "", "@dashboard", now, 2*time.Minute)
	b := schemas.NewAuthChallenge("helpdesk", "dashboard", "看板", "@dashboard", now, 2*time.Minute)
	if !schemas.ValidAuthChallengeID(a.ID) || a.ID == b.ID {
		t.Fatalf("ids %q %q", a.ID, b.ID)
	}
	if a.Status != schemas.AuthPending || a.ClientTitle != "dashboard" || b.ClientTitle != "看板" ||
		a.CreatedAt.Location() != time.UTC || !a.ExpiresAt.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("challenge %+v", a)
	}
}

func TestValidAuthChallengeID(t *testing.T) {
	tests := []struct {
		name, given string
		want        bool
	}{
		{"32 hex", "0123456789abcdef0123456789abcdef", true},
		{"short", "0123456789abcdef", false},
		{"not hex", "0123456789abcdef0123456789abcdeg", false},
		{"KV wildcard", "0123456789abcdef0123456789abcde>", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := schemas.ValidAuthChallengeID(tt.given); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAuthChallengeReported(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	exp := t0.Add(2 * time.Minute)
	tests := []struct {
		name   string
		status string
		at     time.Time
		want   string
	}{
		{"pending in time", schemas.AuthPending, t0, schemas.AuthPending},
		{"pending at the end", schemas.AuthPending, exp, schemas.AuthExpired},
		{"scanned past the end", schemas.AuthScanned, exp.Add(time.Second), schemas.AuthExpired},
		{"confirmed within the grace", schemas.AuthConfirmed, exp.Add(schemas.AuthFetchGrace - time.Second), schemas.AuthConfirmed},
		{"confirmed past the grace", schemas.AuthConfirmed, exp.Add(schemas.AuthFetchGrace), schemas.AuthExpired},
		{"consumed stays consumed", schemas.AuthConsumed, exp.Add(time.Hour), schemas.AuthConsumed},
		{"denied stays denied", schemas.AuthDenied, exp.Add(time.Hour), schemas.AuthDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := schemas.AuthChallenge{Status: tt.status, ExpiresAt: exp}
			if got := ch.Reported(tt.at); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
