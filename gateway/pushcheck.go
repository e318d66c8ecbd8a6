package gateway

import (
	"encoding/json"
	"sort"
	"strings"
)

// WeCom's documented limits on one message/send call's recipients.
const (
	maxToUsers   = 1000
	maxToParties = 100
	maxToTags    = 100
)

// pushFields are the top-level fields of a push body: every field WeCom
// documents for message/send and appchat/send, plus the hub's own (app,
// priority, dedup_key). Anything else is refused on /api/v1/messages (400
// naming it) and dropped on the drop-in /cgi-bin/message/send, which WeCom's
// own SDKs call with extras that WeCom ignores.
var pushFields = map[string]bool{
	// ours
	"app": true, "priority": true, "dedup_key": true,
	// message/send and appchat/send
	"touser": true, "toparty": true, "totag": true, "chatid": true, "agentid": true, "msgtype": true,
	"safe": true, "enable_id_trans": true, "enable_duplicate_check": true, "duplicate_check_interval": true,
	// one body per msgtype
	"text": true, "image": true, "voice": true, "video": true, "file": true, "textcard": true,
	"news": true, "mpnews": true, "markdown": true, "miniprogram_notice": true, "template_card": true,
	"interactive_taskcard": true,
}

// checkFields refuses (strict) or drops the fields no WeCom send API knows.
func checkFields(fields map[string]json.RawMessage, strict bool) error {
	var unknown []string
	for f := range fields {
		if !pushFields[f] {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	if strict {
		sort.Strings(unknown)
		return badField(unknown[0], "unknown field (message/send has no such field)")
	}
	for _, f := range unknown {
		delete(fields, f)
	}
	return nil
}

// checkRecipients checks touser, toparty and totag as WeCom reads them: ids
// joined by "|", no empty item, at most 1,000 users and 100 parties or tags,
// "@all" alone. An empty field counts as absent, but a message to a member
// list (no chatid) must name at least one recipient.
func checkRecipients(fields map[string]json.RawMessage) error {
	named := false
	for _, f := range []struct {
		name string
		max  int
	}{{"touser", maxToUsers}, {"toparty", maxToParties}, {"totag", maxToTags}} {
		raw, ok := fields[f.name]
		if !ok {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return badField(f.name, "must be a string of ids joined by \"|\"")
		}
		if v == "" {
			continue
		}
		items := strings.Split(v, "|")
		for i, it := range items {
			if strings.TrimSpace(it) == "" {
				return badField(f.name, "item %d of %d is empty (ids are joined by \"|\")", i+1, len(items))
			}
			if it == "@all" && (f.name != "touser" || len(items) > 1) {
				return badField(f.name, "\"@all\" must stand alone in touser")
			}
		}
		if len(items) > f.max {
			return badField(f.name, "%d recipients, WeCom accepts at most %d per call", len(items), f.max)
		}
		named = true
	}
	if _, chat := fields["chatid"]; !named && !chat {
		return badField("touser", "no recipient: touser, toparty or totag must name at least one")
	}
	return nil
}
