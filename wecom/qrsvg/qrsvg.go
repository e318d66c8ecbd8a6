// Package qrsvg draws the QR codes members scan with WeCom (the dashboard's
// login, the sample login page) as inline SVG: rendered on the server, so a
// page needs no script library, no CDN and no image file.
package qrsvg

import (
	"fmt"
	"html"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// Render draws text as a QR code (error correction level M) pixels wide, with
// its quiet zone; label is the image's accessible name. The dark modules are
// one path of horizontal runs, a third of the size of a square per module, and
// crisp at any scale.
func Render(text string, pixels int, label string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("qrsvg: %w", err)
	}
	bm := q.Bitmap()
	var p strings.Builder
	for y, row := range bm {
		for x := 0; x < len(row); x++ {
			if !row[x] {
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(&p, "M%d %dh%dv1h-%dz", x, y, run, run)
			x += run - 1
		}
	}
	n := len(bm)
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges" role="img" aria-label="%s"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`,
		n, n, pixels, pixels, html.EscapeString(label), n, n, p.String()), nil
}
