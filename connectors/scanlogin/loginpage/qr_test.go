package loginpage_test

import (
	"strings"
	"testing"

	"github.com/wxhub/wxhub/connectors/scanlogin/loginpage"
)

func TestQRSVG(t *testing.T) {
	tests := []struct {
		name, given string
		wantErr     bool
	}{
		{"login code", "wxhub-login:0123456789abcdef0123456789abcdef", false},
		{"too long for a QR code", strings.Repeat("x", 4000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svg, err := loginpage.QRSVG(tt.given, 200)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			// Version 3 (29 modules) + 4-module quiet zone on each side = 37.
			if !strings.HasPrefix(svg, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 37 37" width="200"`) ||
				strings.Count(svg, "h1v1h-1z") < 200 || strings.Contains(svg, "<script") {
				t.Errorf("svg %.200s", svg)
			}
		})
	}
}

func TestNewNeedsClient(t *testing.T) {
	if _, err := loginpage.New(loginpage.Config{HubURL: "http://127.0.0.1:1", APIKey: "k"}); err == nil {
		t.Fatal("no client: no error")
	}
}
