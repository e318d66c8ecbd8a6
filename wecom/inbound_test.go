package wecom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/schemas"
)

// inboundCases are callbacks as WeCom and the Official Account platform document
// them, with the EventData each must give.
var inboundCases = []struct {
	name     string
	given    string
	want     schemas.EventData
	wantType string
}{
	{
		name: "wecom text",
		given: `<xml><ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[fromUser]]></FromUserName>
<CreateTime>1348831860</CreateTime>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[ this is a test ]]></Content>
<MsgId>1234567890123456</MsgId>
<AgentID>1</AgentID>
</xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "fromUser", CreateTime: 1348831860, MsgType: "text", Content: " this is a test ", MsgID: "1234567890123456", AgentID: 1},
		wantType: "text",
	},
	{
		name:     "wecom image",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://example.com/p.jpg]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "fromUser", CreateTime: 1348831860, MsgType: "image", PicURL: "http://example.com/p.jpg", MediaID: "media_id", MsgID: "1234567890123456", AgentID: 1},
		wantType: "image",
	},
	{
		name:     "wecom voice",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1357290913</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[Format]]></Format><MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "fromUser", CreateTime: 1357290913, MsgType: "voice", MediaID: "media_id", Format: "Format", MsgID: "1234567890123456", AgentID: 1},
		wantType: "voice",
	},
	{
		name:     "mp voice with recognition",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1357290913</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>1234567890123456</MsgId><MsgDataId>xxxx</MsgDataId><Idx>xxxx</Idx></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 1357290913, MsgType: "voice", MediaID: "media_id", Format: "amr", Recognition: "腾讯微信团队", MsgID: "1234567890123456", Extra: map[string]string{"MsgDataId": "xxxx", "Idx": "xxxx"}},
		wantType: "voice",
	},
	{
		name:     "wecom video",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1357290913</CreateTime><MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[media_id]]></MediaId><ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "fromUser", CreateTime: 1357290913, MsgType: "video", MediaID: "media_id", ThumbMediaID: "thumb_media_id", MsgID: "1234567890123456", AgentID: 1},
		wantType: "video",
	},
	{
		name:     "mp shortvideo",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1357290913</CreateTime><MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[media_id]]></MediaId><ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>1234567890123456</MsgId></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 1357290913, MsgType: "shortvideo", MediaID: "media_id", ThumbMediaID: "thumb_media_id", MsgID: "1234567890123456"},
		wantType: "shortvideo",
	},
	{
		name:     "wecom location",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1351776360</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>23.134</Location_X><Location_Y>113.358</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>1234567890123456</MsgId><AppType><![CDATA[wxwork]]></AppType><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "fromUser", CreateTime: 1351776360, MsgType: "location", LocationX: 23.134, LocationY: 113.358, Scale: 20, Label: "位置信息", MsgID: "1234567890123456", AgentID: 1, Extra: map[string]string{"AppType": "wxwork"}},
		wantType: "location",
	},
	{
		name:     "wecom link",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[link]]></MsgType><Title><![CDATA[this is a title!]]></Title><Description><![CDATA[this is a description!]]></Description><Url><![CDATA[URL]]></Url><PicUrl><![CDATA[this is a url]]></PicUrl><MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "fromUser", CreateTime: 1348831860, MsgType: "link", Title: "this is a title!", Description: "this is a description!", URL: "URL", PicURL: "this is a url", MsgID: "1234567890123456", AgentID: 1},
		wantType: "link",
	},
	{
		name:     "wecom subscribe",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[UserID]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "UserID", CreateTime: 1348831860, MsgType: "event", Event: "subscribe", AgentID: 1},
		wantType: "event.subscribe",
	},
	{
		name:     "mp subscribe from qr scene",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 123456789, MsgType: "event", Event: "subscribe", EventKey: "qrscene_123123", Extra: map[string]string{"Ticket": "TICKET"}},
		wantType: "event.subscribe",
	},
	{
		name:     "mp unsubscribe",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 123456789, MsgType: "event", Event: "unsubscribe"},
		wantType: "event.unsubscribe",
	},
	{
		name:     "mp SCAN",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 123456789, MsgType: "event", Event: "SCAN", EventKey: "SCENE_VALUE", Extra: map[string]string{"Ticket": "TICKET"}},
		wantType: "event.scan",
	},
	{
		name:     "wecom enter_agent",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1408091189</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 1408091189, MsgType: "event", Event: "enter_agent", AgentID: 1},
		wantType: "event.enter_agent",
	},
	{
		name:     "wecom LOCATION",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.104</Latitude><Longitude>113.320</Longitude><Precision>65.000</Precision><AgentID>1</AgentID><AppType><![CDATA[wxwork]]></AppType></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 123456789, MsgType: "event", Event: "LOCATION", Latitude: 23.104, Longitude: 113.32, Precision: 65, AgentID: 1, Extra: map[string]string{"AppType": "wxwork"}},
		wantType: "event.location",
	},
	{
		name:     "wecom click",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event><EventKey><![CDATA[EVENTKEY]]></EventKey><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 123456789, MsgType: "event", Event: "click", EventKey: "EVENTKEY", AgentID: 1},
		wantType: "event.click",
	},
	{
		name:     "mp CLICK upper-case",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 123456789, MsgType: "event", Event: "CLICK", EventKey: "V1001_TODAY_MUSIC"},
		wantType: "event.click",
	},
	{
		name:     "wecom view",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[view]]></Event><EventKey><![CDATA[www.qq.com]]></EventKey><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 123456789, MsgType: "event", Event: "view", EventKey: "www.qq.com", AgentID: 1},
		wantType: "event.view",
	},
	{
		name:     "wecom scancode_push",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1408090502</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 1408090502, MsgType: "event", Event: "scancode_push", EventKey: "6", ScanType: "qrcode", ScanResult: "1", AgentID: 1},
		wantType: "event.scancode_push",
	},
	{
		name:     "wecom scancode_waitmsg",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1408090606</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_waitmsg]]></Event><EventKey><![CDATA[login]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[wxhub-login:abc]]></ScanResult></ScanCodeInfo><AgentID>1000002</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "zhangsan", CreateTime: 1408090606, MsgType: "event", Event: "scancode_waitmsg", EventKey: "login", ScanType: "qrcode", ScanResult: "wxhub-login:abc", AgentID: 1000002},
		wantType: "event.scancode_waitmsg",
	},
	{
		name: "wecom pic_sysphoto",
		given: `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1408090651</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>1</Count>
<PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum>
</item>
</PicList>
</SendPicsInfo><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 1408090651, MsgType: "event", Event: "pic_sysphoto", EventKey: "6", AgentID: 1, Extra: map[string]string{"SendPicsInfo.Count": "1", "SendPicsInfo.PicList.item.PicMd5Sum": "1b5f7c23b5bf75682a53e7b6d163e185"}},
		wantType: "event.pic_sysphoto",
	},
	{
		name:     "wecom pic_weixin with two pictures",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1408090816</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_weixin]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[aaa]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[bbb]]></PicMd5Sum></item></PicList></SendPicsInfo><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 1408090816, MsgType: "event", Event: "pic_weixin", EventKey: "6", AgentID: 1, Extra: map[string]string{"SendPicsInfo.Count": "2", "SendPicsInfo.PicList.item[0].PicMd5Sum": "aaa", "SendPicsInfo.PicList.item[1].PicMd5Sum": "bbb"}},
		wantType: "event.pic_weixin",
	},
	{
		name:     "wecom location_select",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1408091189</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[location_select]]></Event><EventKey><![CDATA[6]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[ 广州市海珠区客村艺苑路 106号]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo><AgentID>1</AgentID><AppType><![CDATA[wxwork]]></AppType></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 1408091189, MsgType: "event", Event: "location_select", EventKey: "6", LocationX: 23, LocationY: 113, Scale: 15, Label: " 广州市海珠区客村艺苑路 106号", AgentID: 1, Extra: map[string]string{"SendLocationInfo.Poiname": "", "AppType": "wxwork"}},
		wantType: "event.location_select",
	},
	{
		name: "wecom template_card_event",
		given: `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[key111]]></EventKey><TaskId><![CDATA[taskid111]]></TaskId><CardType><![CDATA[vote_interaction]]></CardType><ResponseCode><![CDATA[ResponseCode]]></ResponseCode><AgentID>1</AgentID>
<SelectedItems><SelectedItem><QuestionKey><![CDATA[QuestionKey1]]></QuestionKey><OptionIds><OptionId><![CDATA[OptionId1]]></OptionId><OptionId><![CDATA[OptionId2]]></OptionId></OptionIds></SelectedItem><SelectedItem><QuestionKey><![CDATA[QuestionKey2]]></QuestionKey><OptionIds><OptionId><![CDATA[OptionId3]]></OptionId></OptionIds></SelectedItem></SelectedItems></xml>`,
		want: schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 123456789, MsgType: "event", Event: "template_card_event", EventKey: "key111", TaskID: "taskid111", CardType: "vote_interaction", ResponseCode: "ResponseCode", AgentID: 1,
			SelectedItems: []schemas.SelectedItem{{QuestionKey: "QuestionKey1", OptionIDs: []string{"OptionId1", "OptionId2"}}, {QuestionKey: "QuestionKey2", OptionIDs: []string{"OptionId3"}}}},
		wantType: "event.template_card_event",
	},
	{
		name:     "wecom template_card_menu_event",
		given:    `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_menu_event]]></Event><EventKey><![CDATA[key111]]></EventKey><TaskId><![CDATA[taskid111]]></TaskId><CardType><![CDATA[text_notice]]></CardType><ResponseCode><![CDATA[ResponseCode]]></ResponseCode><AgentID>1</AgentID></xml>`,
		want:     schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 123456789, MsgType: "event", Event: "template_card_menu_event", EventKey: "key111", TaskID: "taskid111", CardType: "text_notice", ResponseCode: "ResponseCode", AgentID: 1},
		wantType: "event.template_card_menu_event",
	},
	{
		name:  "wecom change_contact update_user",
		given: `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID><NewUserID><![CDATA[zhangsan001]]></NewUserID><Department><![CDATA[1,2,3]]></Department><ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item><Item><Name><![CDATA[卡号]]></Name><Type>1</Type><Web><Title><![CDATA[企业微信]]></Title><Url><![CDATA[https://work.weixin.qq.com]]></Url></Web></Item></ExtAttr></xml>`,
		want: schemas.EventData{ToUser: "toUser", User: "sys", CreateTime: 1403610513, MsgType: "event", Event: "change_contact", ChangeType: "update_user", Extra: map[string]string{
			"UserID": "zhangsan", "NewUserID": "zhangsan001", "Department": "1,2,3",
			"ExtAttr.Item[0].Name": "爱好", "ExtAttr.Item[0].Type": "0", "ExtAttr.Item[0].Text.Value": "旅游",
			"ExtAttr.Item[1].Name": "卡号", "ExtAttr.Item[1].Type": "1", "ExtAttr.Item[1].Web.Title": "企业微信", "ExtAttr.Item[1].Web.Url": "https://work.weixin.qq.com",
		}},
		wantType: "event.change_contact",
	},
	{
		name:     "wecom batch_job_result",
		given:    `<xml><ToUserName><![CDATA[wx28dbb14e3720FAKE]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1425284517</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event><BatchJob><JobId><![CDATA[S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4]]></JobId><JobType><![CDATA[sync_user]]></JobType><ErrCode>0</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>`,
		want:     schemas.EventData{ToUser: "wx28dbb14e3720FAKE", User: "sys", CreateTime: 1425284517, MsgType: "event", Event: "batch_job_result", Extra: map[string]string{"BatchJob.JobId": "S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4", "BatchJob.JobType": "sync_user", "BatchJob.ErrCode": "0", "BatchJob.ErrMsg": "ok"}},
		wantType: "event.batch_job_result",
	},
	{
		name:  "wecom open_approval_change",
		given: `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>1527838022</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[open_approval_change]]></Event><AgentID>1</AgentID><ApprovalInfo><ThirdNo><![CDATA[201806010001]]></ThirdNo><OpenSpName><![CDATA[付款]]></OpenSpName><OpenSpStatus>1</OpenSpStatus><ApplyTime>1527837645</ApplyTime><ApplyUserId><![CDATA[xiaoming]]></ApplyUserId><ApprovalNodes><ApprovalNode><NodeStatus>1</NodeStatus><Items><Item><ItemName><![CDATA[张三]]></ItemName><ItemUserId><![CDATA[zhangsan]]></ItemUserId><ItemStatus>1</ItemStatus></Item></Items></ApprovalNode></ApprovalNodes></ApprovalInfo></xml>`,
		want: schemas.EventData{ToUser: "toUser", User: "FromUser", CreateTime: 1527838022, MsgType: "event", Event: "open_approval_change", AgentID: 1, Extra: map[string]string{
			"ApprovalInfo.ThirdNo": "201806010001", "ApprovalInfo.OpenSpName": "付款", "ApprovalInfo.OpenSpStatus": "1", "ApprovalInfo.ApplyTime": "1527837645", "ApprovalInfo.ApplyUserId": "xiaoming",
			"ApprovalInfo.ApprovalNodes.ApprovalNode.NodeStatus":            "1",
			"ApprovalInfo.ApprovalNodes.ApprovalNode.Items.Item.ItemName":   "张三",
			"ApprovalInfo.ApprovalNodes.ApprovalNode.Items.Item.ItemUserId": "zhangsan",
			"ApprovalInfo.ApprovalNodes.ApprovalNode.Items.Item.ItemStatus": "1",
		}},
		wantType: "event.open_approval_change",
	},
	{
		name:     "mp TEMPLATESENDJOBFINISH",
		given:    `<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName><CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status></xml>`,
		want:     schemas.EventData{ToUser: "gh_7f083739789a", User: "oia2TjuEGTNoeX76QEjQNrcURxG8", CreateTime: 1395658920, MsgType: "event", Event: "TEMPLATESENDJOBFINISH", Extra: map[string]string{"MsgID": "200163836", "Status": "success"}},
		wantType: "event.templatesendjobfinish",
	},
	{
		name:     "mp LOCATION",
		given:    `<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>0</Latitude><Longitude>-0.5</Longitude><Precision>119.385040</Precision></xml>`,
		want:     schemas.EventData{ToUser: "gh_123", User: "oUser", CreateTime: 123456789, MsgType: "event", Event: "LOCATION", Longitude: -0.5, Precision: 119.38504},
		wantType: "event.location",
	},
	{
		name:     "duplicate known element kept in Extra",
		given:    `<xml><FromUserName>a</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>one</Content><Content>two</Content></xml>`,
		want:     schemas.EventData{User: "a", CreateTime: 1, MsgType: "text", Content: "one", Extra: map[string]string{"Content[1]": "two"}},
		wantType: "text",
	},
	{
		name:     "odd msgtype sanitized for the subject",
		given:    `<xml><FromUserName>a</FromUserName><CreateTime>1</CreateTime><MsgType>Mini Program.*</MsgType></xml>`,
		want:     schemas.EventData{User: "a", CreateTime: 1, MsgType: "Mini Program.*"},
		wantType: "mini_program__",
	},
	{
		name:     "event without name",
		given:    `<xml><MsgType>event</MsgType><CreateTime> 5 </CreateTime></xml>`,
		want:     schemas.EventData{MsgType: "event", CreateTime: 5},
		wantType: "event.unknown",
	},
}

func TestParseInbound(t *testing.T) {
	for _, tt := range inboundCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInbound([]byte(tt.given))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseInbound =\n%+v\nwant\n%+v", got, tt.want)
			}
			if typ := EventType(got); typ != tt.wantType {
				t.Errorf("EventType = %q, want %q", typ, tt.wantType)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("json: %v", err)
			}
		})
	}
}

func TestBuildInboundRoundTrip(t *testing.T) {
	for _, tt := range inboundCases {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := BuildInbound(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseInbound(doc)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("round trip =\n%+v\nwant\n%+v\nxml %s", got, tt.want, doc)
			}
		})
	}
}

func TestBuildHelpers(t *testing.T) {
	tests := []struct {
		name  string
		build func() ([]byte, error)
		want  schemas.EventData
	}{
		{
			name: "text",
			build: func() ([]byte, error) {
				return BuildText("ww1", "zhangsan", 1000002, 1700000000, "订单 ]]> 1001", "42")
			},
			want: schemas.EventData{ToUser: "ww1", User: "zhangsan", AgentID: 1000002, CreateTime: 1700000000, MsgType: "text", Content: "订单 ]]> 1001", MsgID: "42"},
		},
		{
			name: "event with extra",
			build: func() ([]byte, error) {
				return BuildEvent("gh_1", "oUser", 0, 1700000000, "SCAN", "42", map[string]string{"Ticket": "T"})
			},
			want: schemas.EventData{ToUser: "gh_1", User: "oUser", CreateTime: 1700000000, MsgType: "event", Event: "SCAN", EventKey: "42", Extra: map[string]string{"Ticket": "T"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseInbound(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBuildInboundFailures(t *testing.T) {
	tests := []struct {
		name  string
		given schemas.EventData
	}{
		{"control character", schemas.EventData{MsgType: "text", Content: "a\x00b"}},
		{"invalid utf-8", schemas.EventData{MsgType: "text", Content: "a\xffb"}},
		{"bad extra name", schemas.EventData{MsgType: "text", Extra: map[string]string{"a b": "x"}}},
		{"empty extra segment", schemas.EventData{MsgType: "text", Extra: map[string]string{"A..B": "x"}}},
		{"bad extra index", schemas.EventData{MsgType: "text", Extra: map[string]string{"A[x]": "x"}}},
		{"negative extra index", schemas.EventData{MsgType: "text", Extra: map[string]string{"A[-1]": "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := BuildInbound(tt.given); !errors.Is(err, ErrXML) {
				t.Fatalf("err = %v, want ErrXML", err)
			}
		})
	}
}

func TestParseInboundFailures(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		wantMsg string
	}{
		{"empty", ``, "empty document"},
		{"not xml", `hello`, "outside the root"},
		{"unclosed", `<xml><MsgType>text</MsgType>`, "unexpected EOF"},
		{"wrong root", `<doc><MsgType>text</MsgType></doc>`, "root element <doc>"},
		{"two roots", `<xml><MsgType>text</MsgType></xml><xml/>`, "more than one root"},
		{"no msgtype", `<xml><Content>hi</Content></xml>`, "no <MsgType>"},
		{"bad create time", `<xml><MsgType>text</MsgType><CreateTime>yesterday</CreateTime></xml>`, "<CreateTime>"},
		{"bad agent id", `<xml><MsgType>text</MsgType><AgentID>1x</AgentID></xml>`, "<AgentID>"},
		{"bad latitude", `<xml><MsgType>event</MsgType><Latitude>north</Latitude></xml>`, "<Latitude>"},
		{"NaN longitude", `<xml><MsgType>event</MsgType><Longitude>NaN</Longitude></xml>`, "<Longitude>"},
		{"infinite location", `<xml><MsgType>location</MsgType><Location_X>1e999</Location_X></xml>`, "<Location_X>"},
		{"bad scale in location_select", `<xml><MsgType>event</MsgType><SendLocationInfo><Scale>big</Scale></SendLocationInfo></xml>`, "<Scale>"},
		{"too deep", `<xml>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `</xml>`, "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInbound([]byte(tt.given))
			if !errors.Is(err, ErrXML) {
				t.Fatalf("err = %v, want ErrXML", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDedupKey(t *testing.T) {
	a := []byte(`<xml><MsgType>event</MsgType><Event>click</Event><CreateTime>1</CreateTime><EventKey>a</EventKey></xml>`)
	b := []byte(`<xml><MsgType>event</MsgType><Event>click</Event><CreateTime>1</CreateTime><EventKey>b</EventKey></xml>`)
	hash := func(p []byte) string { s := sha256.Sum256(p); return hex.EncodeToString(s[:])[:32] }
	tests := []struct {
		name  string
		given schemas.EventData
		plain []byte
		want  string
	}{
		{"msg id wins", schemas.EventData{MsgID: "4561255354251345929"}, a, "4561255354251345929"},
		{"hash of event a", schemas.EventData{}, a, hash(a)},
		{"same second, other key", schemas.EventData{}, b, hash(b)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DedupKey(tt.given, tt.plain); got != tt.want {
				t.Fatalf("DedupKey = %q, want %q", got, tt.want)
			}
		})
	}
	if hash(a) == hash(b) || len(hash(a)) != 32 {
		t.Fatal("distinct events of one second must get distinct 32-char keys")
	}
}

func FuzzParseInbound(f *testing.F) {
	for _, tt := range inboundCases {
		f.Add([]byte(tt.given))
	}
	f.Add([]byte(`<xml><MsgType>x</MsgType><A.B>1</A.B><A>2<B>3</B></A></xml>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := ParseInbound(doc)
		if err != nil {
			if !errors.Is(err, ErrXML) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("parsed event does not encode as JSON: %v", err)
		}
		_ = EventType(d)
		if k := DedupKey(d, doc); k == "" {
			t.Fatal("empty dedup key")
		}
		built, err := BuildInbound(d)
		if err != nil {
			return // e.g. element names with dots, which Extra cannot express
		}
		if _, err := ParseInbound(built); err != nil {
			t.Fatalf("BuildInbound output does not parse: %v\n%s", err, built)
		}
	})
}
