package dashboard_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/internal/browsertest"
)

// A member logs in to the dashboard by scanning its QR code with WeCom: the
// page shows the code, follows the scan and the confirmation, then opens.
func TestBrowserWeComLogin(t *testing.T) {
	chromium := browsertest.Chromium(t)
	w := newWeComEnv(t, wecomConfig())
	ctx := testCtx(t)
	shots := newShooter(t)

	bctx, run := startBrowser(t, ctx, chromium)

	run("login page",
		chromedp.Navigate(w.srv.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.ID("wecom-start")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Click(chromedp.ID("wecom-start")),
		chromedp.WaitVisible(chromedp.CSS(`#wecom-qr svg`)),
		waitJS(`document.querySelector("#wecom-status").textContent.includes("Scan this code")`),
		shots.shot("login-wecom"),
	)
	qr, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#wecom").dataset.qr`))
	if err != nil {
		t.Fatal(err)
	}

	w.member(t, "helpdesk", "zhangsan", qr, "")
	run("scanned", waitJS(`document.querySelector("#wecom-status").textContent.includes("Confirm on the card")`))
	w.member(t, "helpdesk", "zhangsan", qr, scanlogin.KeyConfirm)
	run("confirmed: the dashboard opens",
		chromedp.WaitVisible(chromedp.ID("depth-WXHUB_ROUTE")),
		waitJS(`document.querySelector("#who").textContent === "wecom:ZhangSan (admin)"`),
	)

	// Someone not listed in wecom_users is told so on the page.
	run("sign out",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("wecom-start")),
		chromedp.Click(chromedp.ID("wecom-start")),
		chromedp.WaitVisible(chromedp.CSS(`#wecom-qr svg`)),
	)
	qr, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#wecom").dataset.qr`))
	if err != nil {
		t.Fatal(err)
	}
	w.member(t, "helpdesk", "wangwu", qr, scanlogin.KeyConfirm)
	run("refused",
		waitJS(`document.querySelector("#wecom").dataset.state === "refused"`),
		waitJS(`document.querySelector("#wecom-status").textContent.includes("dashboard.wecom_users")`),
		chromedp.WaitVisible(chromedp.CSS(`#wecom-restart button`)),
		shots.shot("login-wecom-refused"),
	)
}
