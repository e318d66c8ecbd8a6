package qrsvg_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/wxhub/wxhub/wecom/qrsvg"
)

var svgRun = regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`)

// The runs of the path, painted back, are exactly the QR code's dark modules.
func TestRender(t *testing.T) {
	tests := []struct {
		name, given string
		wantErr     bool
	}{
		{"login code", "wxhub-login:0123456789abcdef0123456789abcdef", false},
		{"too long for a QR code", strings.Repeat("x", 4000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svg, err := qrsvg.Render(tt.given, 232, `login "QR"`)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			q, _ := qrcode.New(tt.given, qrcode.Medium)
			want := q.Bitmap()
			n := len(want)
			if !strings.HasPrefix(svg, fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="232"`, n, n)) || strings.Contains(svg, "<script") ||
				!strings.Contains(svg, `aria-label="login &#34;QR&#34;"`) {
				t.Fatalf("svg %.200s", svg)
			}
			got := make([][]bool, n)
			for i := range got {
				got[i] = make([]bool, n)
			}
			for _, m := range svgRun.FindAllStringSubmatch(svg, -1) {
				var x, y, w, back int
				fmt.Sscan(m[1]+" "+m[2]+" "+m[3]+" "+m[4], &x, &y, &w, &back)
				if w != back {
					t.Fatalf("run %s does not close", m[0])
				}
				for i := x; i < x+w; i++ {
					if got[y][i] {
						t.Fatalf("module %d,%d painted twice", i, y)
					}
					got[y][i] = true
				}
			}
			for y := range want {
				for x := range want[y] {
					if got[y][x] != want[y][x] {
						t.Fatalf("module %d,%d: %v, want %v", x, y, got[y][x], want[y][x])
					}
				}
			}
		})
	}
}
