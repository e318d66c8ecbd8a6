package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The dashboard's "Log in with WeCom" through the whole hub: the member scans
// in the (simulated) WeCom app, the scanlogin connector sends the confirm card,
// the click confirms, and the browser's poll turns into an admin session.
func TestE2EDashboardWeComLogin(t *testing.T) {
	e := startE2E(t, withConfig(func(c *config.Config) {
		c.Dashboard.WeComApp = "helpdesk"
		c.Dashboard.WeComUsers = []dashboard.WeComUser{{UserID: "zhangsan", Role: dashboard.RoleAdmin}}
	}))
	ctx := waitCtx(t, 60*time.Second)
	base := "http://" + e.hubAddr
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/dashboard/login/wecom", nil)
	req.Header.Set("Origin", base)
	res, err := browser.Do(req) // follows the 303 to the QR page
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`data-qr="(wxhub-login:[0-9a-f]{32})"`).FindSubmatch(page)
	if res.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("QR page: %d %s", res.StatusCode, page)
	}
	qr := string(m[1])

	if d, err := e.sim.SendEvent(ctx, "helpdesk", "zhangsan", schemas.EventData{Event: "scancode_waitmsg", EventKey: "login",
		ScanType: "qrcode", ScanResult: qr}); err != nil || d.Status != 200 {
		t.Fatalf("scan: %+v %v", d, err)
	}
	card, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && m.MsgType == "template_card" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(card.Body), dashboard.ChallengeTitle) {
		t.Fatalf("confirm card %s", card.Body)
	}
	if _, err := e.sim.ClickCard(ctx, "helpdesk", "zhangsan", card, scanlogin.KeyConfirm); err != nil {
		t.Fatal(err)
	}

	// The page's script polls until the connector recorded the click.
	var st struct{ Status, Message, Redirect string }
	for st.Status != "ok" {
		if ctx.Err() != nil || (st.Status != "" && st.Status != schemas.AuthPending && st.Status != schemas.AuthScanned) {
			t.Fatalf("poll: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
		res, err := browser.Get(base + "/dashboard/login/wecom/status")
		if err != nil {
			t.Fatal(err)
		}
		st.Status = ""
		err = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err = browser.Get(base + "/dashboard/api/me")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var me struct{ User, Role string }
	if err := json.NewDecoder(res.Body).Decode(&me); err != nil || me.User != "wecom:zhangsan" || me.Role != dashboard.RoleAdmin {
		t.Fatalf("/api/me: %d %+v %v", res.StatusCode, me, err)
	}
}
