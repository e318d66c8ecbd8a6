package connectors

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/wxhub/wxhub/schemas"
)

// WeComBody turns body, a WeCom message body as a legacy system writes it
// (message/send, or appchat/send when it has a chatid; agentid is dropped,
// the sender adds it), into a reply. Without touser, toparty, totag or
// chatid it goes to user. ok is false for an empty body or an empty JSON
// object (no reply); a body that is not a JSON object with a msgtype is an
// error.
func WeComBody(user string, body []byte) (r Reply, ok bool, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Reply{}, false, nil
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return Reply{}, false, fmt.Errorf("not a WeCom message body (a JSON object): %w", err)
	}
	if len(m) == 0 {
		return Reply{}, false, nil
	}
	if _, ok := m["msgtype"].(string); !ok {
		return Reply{}, false, fmt.Errorf("not a WeCom message body: no msgtype")
	}
	delete(m, "agentid")
	kind := schemas.KindMessage
	if _, ok := m["chatid"]; ok {
		kind = schemas.KindAppChat
	} else if m["touser"] == nil && m["toparty"] == nil && m["totag"] == nil {
		m["touser"] = user
	}
	return Reply{Kind: kind, Body: m}, true, nil
}
