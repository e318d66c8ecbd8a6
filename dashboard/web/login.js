// Polls the WeCom login of this browser (the challenge is in an HttpOnly
// cookie) until it is confirmed, refused, cancelled or expired.
"use strict";
(function () {
  const box = document.getElementById("wecom");
  if (!box) return;
  const status = document.getElementById("wecom-status");
  const qr = document.getElementById("wecom-qr");
  const restart = document.getElementById("wecom-restart");
  const every = 1500;
  let failures = 0;

  function over(msg) {
    status.textContent = msg;
    status.classList.add("error");
    qr.classList.add("done");
    restart.hidden = false;
  }

  async function poll() {
    let st;
    try {
      const res = await fetch(box.dataset.poll, { cache: "no-store", credentials: "same-origin" });
      st = await res.json();
    } catch (e) {
      st = { status: "error", message: "Cannot reach the hub; retrying." };
    }
    box.dataset.state = st.status;
    switch (st.status) {
      case "pending":
      case "scanned":
        failures = 0;
        status.textContent = st.message;
        status.classList.remove("error");
        break;
      case "ok":
        status.textContent = st.message;
        status.classList.add("ok");
        location.assign(st.redirect || "/dashboard/");
        return;
      case "error":
        if (++failures >= 20) { over(st.message); return; }
        status.textContent = st.message;
        break;
      default: // refused, denied, expired
        over(st.message);
        return;
    }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
