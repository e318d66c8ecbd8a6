package oidc_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/internal/browsertest"

	"github.com/chromedp/chromedp"

	"github.com/wxhub/wxhub/schemas"
)

// TestBrowserLogin drives headless Chromium through the sample client: its
// login link, the hub's login page with the QR code, the scan and confirm in
// the WeCom app (the scanlogin connector on the same bucket), and back at the
// client logged in; with the PIN required, the PIN page comes first.
// WXHUB_SCREENSHOTS=1 saves the pages to docs/screenshots.
func TestBrowserLogin(t *testing.T) {
	chromium := browsertest.Chromium(t)
	for _, tc := range []struct {
		name       string
		requirePIN bool
		user       string
		wantACR    string
	}{
		{"scan", false, "zhangsan", schemas.ACRWeCom},
		{"scan then PIN", true, "lisi", schemas.ACRPIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts{requirePIN: tc.requirePIN})
			if tc.requirePIN {
				if err := e.pins.Set(context.Background(), tc.user, "482915"); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			shotDir := t.TempDir()
			if os.Getenv("WXHUB_SCREENSHOTS") == "1" {
				shotDir = filepath.Join("..", "..", "docs", "screenshots")
			}
			shot := func(name string) chromedp.Action[chromedp.Void] {
				return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					buf, err := chromedp.FullScreenshot(100)(ctx, tg)
					if err != nil {
						return err
					}
					return os.WriteFile(filepath.Join(shotDir, name+".png"), buf, 0o644)
				})
			}
			opts := append(chromedp.DefaultExecAllocatorOptions[:],
				chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
				chromedp.NoFirstRun, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
				chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
				chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 800),
			)
			actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
			defer cancelA()
			bctx, cancelB := chromedp.NewContext(actx)
			defer cancelB()
			if err := chromedp.Do(bctx); err != nil {
				t.Fatalf("start chromium: %v", err)
			}
			run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
				t.Helper()
				for i, a := range actions {
					sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
					err := chromedp.Do(sctx, a)
					cancel()
					if err != nil {
						text, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ""`))
						t.Fatalf("%s, step %d: %v\npage:\n%s", what, i, err, text)
					}
				}
			}
			run("client page", chromedp.Navigate(e.appURL), chromedp.WaitVisible(chromedp.ID("login")), chromedp.Click(chromedp.ID("login")),
				chromedp.WaitVisible(chromedp.CSS("#qr svg")))
			qr, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#qr").dataset.text`))
			if err != nil || !strings.HasPrefix(qr, schemas.AuthQRPrefix) {
				t.Fatalf("QR text %q, %v", qr, err)
			}
			run("login page", shot("oidc-login-"+strings.ReplaceAll(tc.name, " ", "-")))
			scanAndConfirm(t, e.b, strings.TrimPrefix(qr, schemas.AuthQRPrefix), tc.user)
			if tc.requirePIN {
				run("PIN page", chromedp.WaitVisible(chromedp.ID("pin")), shot("oidc-pin"),
					chromedp.SendKeys(chromedp.ID("pin"), "482915"), chromedp.Click(chromedp.ID("submit")))
			}
			run("logged in", chromedp.WaitVisible(chromedp.ID("sub")), shot("oidc-client-"+strings.ReplaceAll(tc.name, " ", "-")))
			got, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#sub").textContent + " " + document.querySelector("#acr").textContent`))
			if got != tc.user+" "+tc.wantACR {
				t.Fatalf("client shows %q, want %q", got, tc.user+" "+tc.wantACR)
			}
		})
	}
}
