package ticketdemo_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/connectors/http/ticketdemo"
)

func TestAPI(t *testing.T) {
	h := ticketdemo.New(ticketdemo.Config{Token: "tok"})
	tests := []struct {
		name, path, auth string
		want             int
		wantBody         string
	}{
		{"ticket", "/tickets/77", "Bearer tok", 200, `"title":"打印机卡纸（三楼）"`},
		{"unknown", "/tickets/5", "Bearer tok", 404, "no such ticket"},
		{"not a number", "/tickets/x", "Bearer tok", 400, "must be a number"},
		{"no token", "/tickets/77", "", 401, "bearer token"},
		{"wrong token", "/tickets/77", "Bearer nope", 401, "bearer token"},
		{"list", "/tickets", "Bearer tok", 200, `"id":1001`},
		{"health without token", "/healthz", "", 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Fatalf("got %d %s, want %d with %q", w.Code, w.Body, tt.want, tt.wantBody)
			}
		})
	}
}
