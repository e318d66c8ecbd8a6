// Package schemas holds the Go types of every message on the bus and their JSON
// Schemas (schemas/*.json, embedded). The JSON Schemas are the contract for
// connectors in other languages; a test keeps the Go types and the schemas in agreement.
//
// Every bus message is a CloudEvents 1.0 structured-mode JSON document.
package schemas

import (
	"encoding/json"
	"time"
)

// SpecVersion is the CloudEvents version of every bus message.
const SpecVersion = "1.0"

// Schema ids, carried in the Wxhub-Schema header as "<id>/<version>".
const (
	SchemaEvent      = "wxhub.event/v1"      // WXHUB_IN and WXHUB_ROUTE: a user's message or event
	SchemaOutbound   = "wxhub.outbound/v1"   // WXHUB_OUT: something to send to WeChat
	SchemaDeadLetter = "wxhub.deadletter/v1" // WXHUB_DLQ: a message that failed past its retries
)

// Channels: where an inbound event came from.
const (
	ChannelWeCom = "wecom" // a WeCom (企业微信) app
	ChannelMP    = "mp"    // a WeChat Official Account (服务号)
)

// Event is the CloudEvents envelope of one inbound message or event from WeChat.
// Type is "wxhub.in.<msgtype>" for messages and "wxhub.in.event.<event>" for
// events (event names lower-cased); Source is "<channel>/<app>"; ID is the dedup key.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// TraceParent is the CloudEvents distributed-tracing extension (W3C traceparent).
	TraceParent string    `json:"traceparent,omitempty"`
	Data        EventData `json:"data"`
}

// EventData is the normalized content of a WeCom or Official Account callback.
// Fields that a message type does not carry are omitted from the JSON.
// Extra holds every XML element that has no field here, so nothing WeChat sends is lost.
type EventData struct {
	Channel    string `json:"channel"`            // "wecom" or "mp"
	App        string `json:"app"`                // the app's (or account's) name in the config
	Corp       string `json:"corp,omitempty"`     // WeCom: the app's corp id (wecom.corps[]); ToUserName of its callbacks
	ToUser     string `json:"to_user"`            // ToUserName: corp id or the account's original id
	User       string `json:"user"`               // FromUserName: the member's userid or the customer's openid
	AgentID    int64  `json:"agent_id,omitempty"` // AgentID (WeCom)
	CreateTime int64  `json:"create_time"`        // CreateTime, Unix seconds
	MsgType    string `json:"msg_type"`           // text, image, voice, video, shortvideo, location, link, event
	MsgID      string `json:"msg_id,omitempty"`   // MsgId, as a string (64-bit)
	Content    string `json:"content,omitempty"`  // text
	PicURL     string `json:"pic_url,omitempty"`  // image
	MediaID    string `json:"media_id,omitempty"` // image, voice, video
	Format     string `json:"format,omitempty"`   // voice: amr, speex
	// Recognition is the Official Account's transcript of a voice message (when voice
	// recognition is on). WeCom voice messages never carry one.
	Recognition  string `json:"recognition,omitempty"`
	ThumbMediaID string `json:"thumb_media_id,omitempty"` // video
	// MediaURL is where a connector or webhook reads the medium of a WeCom
	// image, voice, video or file message, or an Official Account's image,
	// voice, video or shortvideo message, through the hub
	// (GET /api/v1/media/{app}/{media_id}, with an API key for the app):
	// absolute when gateway.public_url is set.
	MediaURL string `json:"media_url,omitempty"`
	// Audio says what a voice message's audio is (from Format) so a connector
	// knows how to play or convert it; the hub media URL serves it as MIMEType.
	Audio       *Audio  `json:"audio,omitempty"`
	LocationX   float64 `json:"location_x,omitempty"` // location message: latitude
	LocationY   float64 `json:"location_y,omitempty"` // location message: longitude
	Scale       int     `json:"scale,omitempty"`
	Label       string  `json:"label,omitempty"`
	Title       string  `json:"title,omitempty"`       // link
	Description string  `json:"description,omitempty"` // link
	URL         string  `json:"url,omitempty"`         // link

	Event    string `json:"event,omitempty"`     // event name as WeChat spells it (subscribe, click, LOCATION, ...)
	EventKey string `json:"event_key,omitempty"` // click/view/scancode key
	// LOCATION event
	Latitude  float64 `json:"latitude,omitempty"`
	Longitude float64 `json:"longitude,omitempty"`
	Precision float64 `json:"precision,omitempty"`
	// scancode_push / scancode_waitmsg
	ScanType   string `json:"scan_type,omitempty"`
	ScanResult string `json:"scan_result,omitempty"`
	// template_card_event
	TaskID        string         `json:"task_id,omitempty"`
	CardType      string         `json:"card_type,omitempty"`
	ResponseCode  string         `json:"response_code,omitempty"`
	SelectedItems []SelectedItem `json:"selected_items,omitempty"`
	// change_contact
	ChangeType string `json:"change_type,omitempty"`

	Extra map[string]string `json:"extra,omitempty"`
}

// SelectedItem is one answered question of a template card (vote/multiple interaction cards).
type SelectedItem struct {
	QuestionKey string   `json:"question_key"`
	OptionIDs   []string `json:"option_ids"`
}

// Outbound kinds: which WeCom API the sender calls.
const (
	KindMessage    = "message"     // message/send
	KindAppChat    = "appchat"     // appchat/send
	KindCardUpdate = "card_update" // message/update_template_card
	KindChatCreate = "chat_create" // appchat/create (the body carries the chatid the hub chose)
	KindRecall     = "recall"      // message/recall (body {"msgid": WeCom's msgid}; data.target names the message)
	// KindMPTemplate is an Official Account template message (message/template/send:
	// touser, template_id, data, url). Official Accounts send KindMessage bodies
	// through message/custom/send (客服消息).
	KindMPTemplate = "mp_template"
)

// Priorities of outbound messages. Urgent ones pass quiet hours and jump queues.
const (
	PriorityUrgent = "urgent"
	PriorityNormal = "normal"
	PriorityBulk   = "bulk"
)

// Outbound is the CloudEvents envelope of one message to send (WXHUB_OUT).
type Outbound struct {
	SpecVersion     string       `json:"specversion"`
	ID              string       `json:"id"`
	Source          string       `json:"source"` // who asked: "connector/<name>", "api/<key name>", "router"
	Type            string       `json:"type"`   // "wxhub.out.<kind>"
	Time            time.Time    `json:"time"`
	DataContentType string       `json:"datacontenttype"`
	TraceParent     string       `json:"traceparent,omitempty"`
	Data            OutboundData `json:"data"`
}

// OutboundData is a message for the sender. Body is WeCom's own request body for
// the API that Kind names (message/send: touser, toparty, totag, msgtype, text, ...;
// appchat/send: chatid, msgtype, ...; update_template_card: userids, response_code, ...),
// without agentid, which the sender fills in from App.
type OutboundData struct {
	App       string `json:"app"`
	Kind      string `json:"kind"`
	Priority  string `json:"priority,omitempty"`    // urgent, normal (default), bulk
	DedupKey  string `json:"dedup_key,omitempty"`   // caller's idempotency key
	InReplyTo string `json:"in_reply_to,omitempty"` // the event id this answers, if any
	// Target is the outbound id a recall (or card update) acts on: the sender
	// records the outcome in that message's status.
	Target string `json:"target,omitempty"`
	// EventTime is the Time of the event this answers (when the gateway received
	// it), copied by the connector runner; the sender measures end-to-end latency
	// (wxhub_e2e_latency_seconds) from it. Absent on messages that answer no event.
	EventTime *time.Time      `json:"event_time,omitempty"`
	Body      json.RawMessage `json:"body"`
}

// DeadLetter is what lands in WXHUB_DLQ: the original message, where and why it failed.
type DeadLetter struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"` // "wxhub.dlq.<stage>"
	Time            time.Time      `json:"time"`
	DataContentType string         `json:"datacontenttype"`
	Data            DeadLetterData `json:"data"`
}

// DeadLetterData names the failed stage, the reason and the original message.
type DeadLetterData struct {
	Stage    string            `json:"stage"`    // router, connector:<name>, sender
	Reason   string            `json:"reason"`   // the last error
	Attempts int               `json:"attempts"` // deliveries tried
	Subject  string            `json:"subject"`  // the original subject, for replay
	Headers  map[string]string `json:"headers,omitempty"`
	Original json.RawMessage   `json:"original"` // the original message body
	// Encoding is "base64" when the original body was not JSON: Original is then
	// a JSON string holding its base64, so even unparsable poison is kept intact.
	Encoding string `json:"encoding,omitempty"`
}

// Audio describes the audio of a voice message: AMR-NB at 8 kHz mono for
// WeCom and Official Accounts, Speex at 16 kHz mono for WeChat's HD voice.
type Audio struct {
	MIMEType   string `json:"mime_type"`   // audio/amr, audio/ogg; codecs=speex
	Extension  string `json:"extension"`   // .amr, .spx: the media URL's filename ends so
	Codec      string `json:"codec"`       // AMR-NB, Speex
	SampleRate int    `json:"sample_rate"` // Hz
	Channels   int    `json:"channels"`
}
