package schemas_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
)

// full returns Go values with every field set: what a connector in another
// language must be able to read, validated against the JSON Schemas.
func full() map[string]any {
	t0 := time.Date(2024, 5, 1, 8, 30, 0, 0, time.UTC)
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	return map[string]any{
		"event.v1": schemas.Event{
			SpecVersion: schemas.SpecVersion, ID: "wecom/helpdesk/123", Source: "wecom/helpdesk", Type: "wxhub.in.event.template_card_event",
			Time: t0, DataContentType: "application/json", TraceParent: tp,
			Data: schemas.EventData{
				Channel: schemas.ChannelWeCom, App: "helpdesk", ToUser: "ww1", User: "zhangsan", AgentID: 1000002, CreateTime: 1714552200,
				MsgType: "event", MsgID: "123", Content: "c", PicURL: "http://p", MediaID: "m", Format: "amr", Recognition: "r",
				ThumbMediaID: "t", MediaURL: "https://hub.example.com/api/v1/media/helpdesk/m",
				Audio:     &schemas.Audio{MIMEType: "audio/amr", Extension: ".amr", Codec: "AMR-NB", SampleRate: 8000, Channels: 1},
				LocationX: 1.5, LocationY: 2.5, Scale: 15, Label: "l", Title: "t", Description: "d", URL: "http://u",
				Event: "template_card_event", EventKey: "k", Latitude: 1, Longitude: 2, Precision: 3, ScanType: "qrcode", ScanResult: "s",
				TaskID: "task", CardType: "button_interaction", ResponseCode: "rc",
				SelectedItems: []schemas.SelectedItem{{QuestionKey: "q", OptionIDs: []string{"a"}}},
				ChangeType:    "update_user", Extra: map[string]string{"Foo": "bar"},
			},
		},
		"outbound.v1": schemas.Outbound{
			SpecVersion: schemas.SpecVersion, ID: "wecom/helpdesk/123/0", Source: "connector/erp", Type: "wxhub.out.message",
			Time: t0, DataContentType: "application/json", TraceParent: tp,
			Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage, Priority: schemas.PriorityUrgent, DedupKey: "k",
				InReplyTo: "wecom/helpdesk/123", EventTime: &t0, Body: json.RawMessage(`{"touser":"zhangsan","msgtype":"text","text":{"content":"hi"}}`)},
		},
		"push.v1": schemas.MPTemplatePush{
			Account: "service", Priority: schemas.PriorityUrgent, DedupKey: "k", ToUser: "oABC-123_x", TemplateID: "tpl_order",
			URL: "https://shop.example/o/1", MiniProgram: &schemas.MPMiniProgram{AppID: "wxmini", PagePath: "pages/o?id=1"},
			Data: map[string]schemas.TemplateValue{"first": {Value: "订单已发货", Color: "#173177"}}, ClientMsgID: "m1",
		},
		"push.v1#media": schemas.MediaPush{App: "helpdesk", ToUser: "lisi", ChatID: "incident1", MsgType: "file", Priority: schemas.PriorityBulk, DedupKey: "k",
			File: &schemas.MediaRef{MediaID: "wxhm_" + strings.Repeat("ab", 32)}, Image: &schemas.MediaRef{URL: "https://files.example/a.png", Filename: "a.png"},
			Voice: &schemas.MediaRef{MediaID: "3voice"}, Video: &schemas.MediaRef{MediaID: "3video", Title: "t", Description: "d"}},
		"media.v1": schemas.MediaStored{MediaID: "wxhm_" + strings.Repeat("ab", 32), Type: "file", Size: 1024, SHA256: strings.Repeat("ab", 32),
			Filename: "周报.xlsx", CreatedAt: t0, ExpiresAt: t0.Add(7 * 24 * time.Hour)},
		"card_update.v1": schemas.CardUpdate{UserIDs: []string{"lisi"}, Button: &schemas.CardButton{ReplaceName: "已处理"}},
		"meeting.v1": schemas.MeetingRequest{App: "helpdesk", Title: "故障复盘", Admin: "zhangsan", Invitees: []string{"lisi", "wangwu"},
			Start: "2024-05-01T09:00:00+08:00", Duration: "45m", Description: "d", ChatID: "incident1", Priority: schemas.PriorityUrgent},
		"status.v1": schemas.MessageStatus{ID: "m1", App: "helpdesk", Client: "erp", Status: schemas.StatusSent, Reason: "r", Attempts: 1,
			DeferredUntil: &t0, WeComMsgID: "w1", InvalidUsers: "x", UpdatedAt: t0, SentAt: &t0, ToUser: "lisi|wangwu", MsgType: "template_card",
			TaskID: "task", ResponseCode: "rc", Clicks: []schemas.CardClick{{User: "lisi", Key: "approve", ResponseCode: "rc2", Time: t0}},
			ClickCount: 1, UsedCodes: []string{"rc0"}},
		"deadletter.v1": schemas.DeadLetter{
			SpecVersion: schemas.SpecVersion, ID: "dlq/connector:erp/WXHUB_ROUTE/7", Source: "wxhub/connector:erp", Type: "wxhub.dlq.connector:erp",
			Time: t0, DataContentType: "application/json",
			Data: schemas.DeadLetterData{Stage: "connector:erp", Reason: "boom", Attempts: 5, Subject: "wxhub.route.erp.3",
				Headers: map[string]string{"Nats-Msg-Id": "x"}, Original: json.RawMessage(`"AAE="`), Encoding: "base64"},
		},
	}
}

func TestGoValuesValidate(t *testing.T) {
	for name, v := range full() {
		t.Run(name, func(t *testing.T) {
			doc, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.Validate(schemaOf(name), doc); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
		})
	}
}

// Every JSON field of the Go types is declared in the schema, so the two cannot drift.
func TestSchemasDeclareEveryGoField(t *testing.T) {
	for name, v := range full() {
		t.Run(name, func(t *testing.T) {
			raw, err := schemas.FS().ReadFile(schemaOf(name) + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var root map[string]any
			if err := json.Unmarshal(raw, &root); err != nil {
				t.Fatal(err)
			}
			checkFields(t, root, root, reflect.TypeOf(v), name)
		})
	}
}

// schemaOf is the schema of a full() entry: "push.v1#media" is a second Go
// type checked against push.v1.
func schemaOf(name string) string {
	s, _, _ := strings.Cut(name, "#")
	return s
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

func checkFields(t *testing.T, root, node map[string]any, typ reflect.Type, path string) {
	t.Helper()
	node = resolve(t, root, node)
	props, _ := node["properties"].(map[string]any)
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || tag == "-" || tag == "" {
			continue
		}
		p, ok := props[tag].(map[string]any)
		if !ok {
			t.Errorf("%s.%s (Go %s.%s) is not declared in the schema", path, tag, typ.Name(), f.Name)
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft != rawType {
			ft = ft.Elem()
			if items, ok := resolve(t, root, p)["items"].(map[string]any); ok {
				p = items
			}
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != timeType {
			checkFields(t, root, p, ft, path+"."+tag)
		}
	}
}

// resolve follows a local "$ref": "#/$defs/x".
func resolve(t *testing.T, root, node map[string]any) map[string]any {
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	cur := any(root)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := cur.(map[string]any)
		cur = m[part]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("unresolvable $ref %q", ref)
	}
	return m
}

func TestSchemasRejectBadMessages(t *testing.T) {
	tests := []struct {
		name      string
		schema    string
		given     func(m map[string]any)
		wantField string
	}{
		{"event without id", "event.v1", func(m map[string]any) { delete(m, "id") }, "id"},
		{"event with unknown channel", "event.v1", func(m map[string]any) { m["data"].(map[string]any)["channel"] = "sms" }, "data.channel"},
		{"event voice audio without rate", "event.v1", func(m map[string]any) {
			delete(m["data"].(map[string]any)["audio"].(map[string]any), "sample_rate")
		}, "data.audio"},
		{"event with wrong specversion", "event.v1", func(m map[string]any) { m["specversion"] = "0.3" }, "specversion"},
		{"outbound with unknown kind", "outbound.v1", func(m map[string]any) { m["data"].(map[string]any)["kind"] = "fax" }, "data.kind"},
		{"outbound message without recipient", "outbound.v1", func(m map[string]any) {
			m["data"].(map[string]any)["body"] = map[string]any{"msgtype": "text"}
		}, "data.body"},
		{"outbound body not an object", "outbound.v1", func(m map[string]any) { m["data"].(map[string]any)["body"] = "hi" }, "data.body"},
		{"template without data", "push.v1", func(m map[string]any) { delete(m, "data") }, "data"},
		{"template data without value", "push.v1", func(m map[string]any) { m["data"] = map[string]any{"first": map[string]any{"color": "#000"}} }, "data.first"},
		{"push without app or account", "push.v1", func(m map[string]any) { delete(m, "account") }, ""},
		{"card update with card and button", "card_update.v1", func(m map[string]any) { m["template_card"] = map[string]any{"card_type": "text_notice"} }, ""},
		{"card update with neither", "card_update.v1", func(m map[string]any) { delete(m, "button") }, ""},
		{"meeting without invitees or chat", "meeting.v1", func(m map[string]any) { delete(m, "invitees"); delete(m, "chatid") }, ""},
		{"meeting with a bad duration", "meeting.v1", func(m map[string]any) { m["duration"] = "an hour" }, "duration"},
		{"status with unknown state", "status.v1", func(m map[string]any) { m["status"] = "lost" }, "status"},
		{"deadletter without stage", "deadletter.v1", func(m map[string]any) { delete(m["data"].(map[string]any), "stage") }, "data.stage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, _ := json.Marshal(full()[tt.schema])
			var m map[string]any
			_ = json.Unmarshal(doc, &m)
			tt.given(m)
			doc, _ = json.Marshal(m)
			err := schemas.Validate(tt.schema, doc)
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if !strings.HasPrefix(fe.Field, tt.wantField) {
				t.Fatalf("field %q (%s), want %q", fe.Field, fe.Reason, tt.wantField)
			}
		})
	}
}

// Every outbound kind the Go code knows is allowed by the schema.
func TestOutboundKindsDeclared(t *testing.T) {
	raw, _ := schemas.FS().ReadFile("outbound.v1.json")
	var root struct {
		Properties struct {
			Data struct {
				Properties struct {
					Kind struct {
						Enum []string `json:"enum"`
					} `json:"kind"`
				} `json:"properties"`
			} `json:"data"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	enum := strings.Join(root.Properties.Data.Properties.Kind.Enum, ",")
	for _, k := range []string{schemas.KindMessage, schemas.KindAppChat, schemas.KindCardUpdate, schemas.KindChatCreate, schemas.KindMPTemplate, schemas.KindRecall} {
		if !strings.Contains(","+enum+",", ","+k+",") {
			t.Errorf("kind %q missing from outbound.v1.json data.kind enum %q", k, enum)
		}
	}
}
