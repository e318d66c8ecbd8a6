// Package sim is a faithful stand-in for WeChat: the WeCom API a hub calls
// (gettoken, message/send, update_template_card, appchat, media/upload,
// auth/getuserinfo, user/get) with WeCom's answer shapes, error codes, expiring
// tokens and send limits, and the WeChat side of callbacks (encrypted, signed,
// retried when the answer is late). The demo, the tests and integrators' own
// development runs use it instead of a real corp; docs/simulator.md is its manual.
//
// A Server is an http.Handler; Start serves it on a port, Serve runs one until a
// context ends (`wxhub sim serve`). Its /sim/ endpoints (sent, stats, reset, say,
// event, ...) are what Remote and the `wxhub sim` commands talk to. All methods
// are safe for concurrent use.
package sim
