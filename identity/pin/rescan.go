package pin

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/qrsvg"
)

// Reset by re-scanning: the challenge the page shows is the scan-to-login
// record in wxhub_auth (schemas.AuthChallenge), bound and confirmed by the
// scanlogin connector like a login; its id stays in an HttpOnly cookie, so only
// the browser that showed the code learns the outcome.
const (
	resetCookie = "wxhub_pin_reset"
	// resetKey is the challenges' Key: no API key reads them (names have no ':').
	resetKey    = "pin:reset"
	resetClient = "wxhub-pin-reset"
	resetTTL    = 2 * time.Minute
)

func (p *pages) scanResetPage(w http.ResponseWriter, r *http.Request) {
	if p.d.Challenges == nil || p.s.cfg.App == "" {
		p.page(w, http.StatusNotFound, PageData{Error: "忘记安全密码请联系管理员重置。"})
		return
	}
	ch := schemas.NewAuthChallenge(p.s.cfg.App, resetClient, "安全密码重置", resetKey, p.s.now(), resetTTL)
	data, _ := json.Marshal(ch)
	if _, err := p.d.Challenges.Create(r.Context(), ch.ID, data); err != nil {
		p.log.Warn("PIN reset challenge not stored", zap.Error(err))
		p.page(w, http.StatusServiceUnavailable, PageData{Error: "服务暂不可用，请稍后重试。"})
		return
	}
	svg, err := qrsvg.Render(schemas.AuthQRPrefix+ch.ID, 240, "")
	if err != nil {
		p.page(w, http.StatusInternalServerError, PageData{Error: "二维码生成失败。"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: resetCookie, Value: ch.ID, Path: "/pin/", HttpOnly: true,
		Secure: strings.HasPrefix(p.d.PublicURL, "https:"), SameSite: http.SameSiteStrictMode, MaxAge: int(resetTTL.Seconds()) + 60})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = resetTmpl.Execute(w, map[string]any{"QR": template.HTML(svg), "QRText": schemas.AuthQRPrefix + ch.ID})
}

// scanResetStatus is polled by the reset page; once the scan is confirmed it
// consumes the challenge and resets the scanner's PIN.
func (p *pages) scanResetStatus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := r.Cookie(resetCookie)
	if p.d.Challenges == nil || err != nil || !schemas.ValidAuthChallengeID(c.Value) {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": schemas.AuthExpired})
		return
	}
	e, err := p.d.Challenges.Get(ctx, c.Value)
	var ch schemas.AuthChallenge
	if err != nil || json.Unmarshal(e.Value(), &ch) != nil || ch.Key != resetKey {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": schemas.AuthExpired})
		return
	}
	st := ch.Reported(p.s.now())
	if st == schemas.AuthConsumed {
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
		return
	}
	if st != schemas.AuthConfirmed {
		writeJSON(w, http.StatusOK, map[string]string{"status": st})
		return
	}
	t := p.s.now().UTC()
	consumed := ch
	consumed.Status, consumed.ConsumedAt = schemas.AuthConsumed, &t
	data, _ := json.Marshal(consumed)
	if _, err := p.d.Challenges.Update(ctx, ch.ID, data, e.Revision()); err != nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": schemas.AuthScanned}) // a concurrent poll won
		return
	}
	if err := p.s.Reset(ctx, ch.User); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error"})
		return
	}
	p.log.Info("PIN reset by re-scan", zap.String("user", ch.User), zap.String("challenge", ch.ID))
	writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
}

var resetTmpl = template.Must(template.New("reset").Parse(`<!doctype html>
<html lang="zh-CN"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>重置安全密码 - wxhub</title>
<style>body{font-family:system-ui,sans-serif;text-align:center;margin:2rem}#qr svg{width:240px;height:240px}</style>
<h1>重置安全密码</h1>
<p>请用企业微信扫一扫此二维码，并在手机上确认。确认后您的安全密码将被清除，请在企业微信应用中重新设置。</p>
<div id="qr" data-text="{{.QRText}}">{{.QR}}</div>
<p id="status">等待扫码…</p>
<script>
(function poll(){
  fetch("/pin/reset/status",{credentials:"same-origin"}).then(function(r){return r.json()}).then(function(s){
    var st=document.getElementById("status");
    if(s.status==="reset"){st.textContent="安全密码已重置，请在企业微信应用中重新设置。";return}
    if(s.status==="scanned"){st.textContent="已扫码，请在手机上确认"}
    else if(s.status==="denied"){st.textContent="已取消";return}
    else if(s.status==="expired"){st.textContent="二维码已过期，请刷新页面";return}
    setTimeout(poll,1000)
  }).catch(function(){setTimeout(poll,2000)})
})();
</script>
</html>
`))
