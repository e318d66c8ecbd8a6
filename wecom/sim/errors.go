package sim

import (
	"errors"
	"fmt"
	"strings"
)

// WeCom error codes the simulator answers with (see WeCom's global error code list).
const (
	CodeBusy                = -1     // system busy, retry
	CodeOK                  = 0      //
	CodeInvalidSecret       = 40001  // invalid credential (wrong corpsecret)
	CodeInvalidUserID       = 40003  // invalid userid
	CodeInvalidMediaType    = 40004  // invalid media type
	CodeInvalidType         = 40005  // invalid type parameter (media/upload)
	CodeInvalidFileSize     = 40006  // invalid file size
	CodeInvalidMediaID      = 40007  // invalid media_id
	CodeInvalidMsgType      = 40008  // invalid message type
	CodeInvalidCorpID       = 40013  // invalid corpid
	CodeInvalidToken        = 40014  // invalid access_token
	CodeInvalidOAuthCode    = 40029  // invalid code
	CodeInvalidUserList     = 40031  // invalid userid list
	CodeInvalidUserListSize = 40032  // invalid userid list size
	CodeInvalidAgentID      = 40056  // invalid agentid
	CodeInvalidParameter    = 40058  // invalid parameter (names the field)
	CodeMissingToken        = 41001  // access_token missing
	CodeMissingCorpID       = 41002  // corpid missing
	CodeMissingSecret       = 41004  // corpsecret missing
	CodeMissingMedia        = 41005  // media data missing
	CodeMissingMediaID      = 41006  // media_id missing
	CodeMissingOAuthCode    = 41008  // code missing
	CodeMissingUserID       = 41009  // userid missing
	CodeMissingURL          = 41010  // url missing
	CodeMissingAgentID      = 41011  // agentid missing
	CodeMissingTitle        = 41016  // title missing
	CodeMissingDescription  = 41033  // description missing
	CodeTokenExpired        = 42001  // access_token expired
	CodeRequirePost         = 43002  // require POST method
	CodeEmptyMedia          = 44001  // empty media data
	CodeEmptyContent        = 44004  // empty content
	CodeMediaTooLarge       = 45001  // media size out of limit
	CodeContentTooLarge     = 45002  // content size out of limit
	CodeTooManyArticles     = 45008  // article count out of limit
	CodeFreqLimit           = 45009  // api freq out of limit
	CodeBadJSON             = 47001  // data format error
	CodeNoPermission        = 48002  // api forbidden
	CodeUserNotFound        = 60111  // userid not found
	CodeNotOwnAgent         = 301002 // token's app is not the agentid's app
	CodeAllInvalid          = 81013  // user & party & tag all invalid
	CodePartyListSize       = 82002  // more than 100 parties
	CodeTagListSize         = 82003  // more than 100 tags
	CodeInvalidChatID       = 86001  // invalid chatid
	CodeChatNotFound        = 86003  // chatid not exist
	CodeInvalidChatName     = 86004  // invalid chat name
	CodeInvalidChatOwner    = 86005  // invalid chat owner
	CodeChatMemberCount     = 86006  // chat member count out of range
	CodeInvalidChatMember   = 86007  // invalid chat member
	CodeNotOwnChat          = 86008  // chat created by another app
)

// errmsgs are the English texts WeCom answers with, before its hint suffix.
var errmsgs = map[int]string{
	CodeBusy:                "system busy",
	CodeInvalidSecret:       "invalid credential",
	CodeInvalidUserID:       "invalid userid",
	CodeInvalidMediaType:    "invalid media type",
	CodeInvalidType:         "invalid type",
	CodeInvalidFileSize:     "invalid file size",
	CodeInvalidMediaID:      "invalid media_id",
	CodeInvalidMsgType:      "invalid message type",
	CodeInvalidCorpID:       "invalid corpid",
	CodeInvalidToken:        "invalid access_token",
	CodeInvalidOAuthCode:    "invalid code",
	CodeInvalidUserList:     "invalid userid list",
	CodeInvalidUserListSize: "invalid userid list size",
	CodeInvalidAgentID:      "invalid agentid",
	CodeInvalidParameter:    "invalid parameter",
	CodeMissingToken:        "access_token missing",
	CodeMissingCorpID:       "corpid missing",
	CodeMissingSecret:       "corpsecret missing",
	CodeMissingMedia:        "media data missing",
	CodeMissingMediaID:      "media_id missing",
	CodeMissingOAuthCode:    "code missing",
	CodeMissingUserID:       "userid missing",
	CodeMissingURL:          "url missing",
	CodeMissingAgentID:      "agentid missing",
	CodeMissingTitle:        "title missing",
	CodeMissingDescription:  "description missing",
	CodeTokenExpired:        "access_token expired",
	CodeRequirePost:         "require POST method",
	CodeEmptyMedia:          "empty media data",
	CodeEmptyContent:        "empty content",
	CodeMediaTooLarge:       "media size out of limit",
	CodeContentTooLarge:     "content size out of limit",
	CodeTooManyArticles:     "article size out of limit",
	CodeFreqLimit:           "api freq out of limit",
	CodeBadJSON:             "data format error",
	CodeNoPermission:        "api forbidden",
	CodeUserNotFound:        "userid not found",
	CodeNotOwnAgent:         "not allow operate another agent with this accesstoken",
	CodeAllInvalid:          "user & party & tag all invalid",
	CodePartyListSize:       "invalid partyid list size",
	CodeTagListSize:         "invalid tagid list size",
	CodeInvalidChatID:       "invalid chatid",
	CodeChatNotFound:        "chatid not exist",
	CodeInvalidChatName:     "invalid chat name",
	CodeInvalidChatOwner:    "invalid chat owner",
	CodeChatMemberCount:     "invalid chat member count",
	CodeInvalidChatMember:   "invalid chat member",
	CodeNotOwnChat:          "not allow to operate the chat created by other app",
}

// apiError is a WeCom error answer: HTTP 200 with {"errcode":N,"errmsg":"..."}.
type apiError struct {
	code   int
	detail string // what exactly is wrong, e.g. the field
}

func (e *apiError) Error() string { return fmt.Sprintf("errcode %d: %s", e.code, e.detail) }

func apiErr(code int, detailf string, a ...any) *apiError {
	return &apiError{code: code, detail: fmt.Sprintf(detailf, a...)}
}

// errmsg renders the errmsg the way WeCom does: the text, a hint, and the link to
// WeCom's error-code lookup.
func errmsg(code int, detail string, hint string) string {
	var b strings.Builder
	if m, ok := errmsgs[code]; ok {
		b.WriteString(m)
	} else {
		b.WriteString("error")
	}
	if detail != "" {
		b.WriteString(": ")
		b.WriteString(detail)
	}
	fmt.Fprintf(&b, ", hint: [%s], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=%d", hint, code)
	return b.String()
}

func lower(s string) string { return strings.ToLower(s) }

// Sentinel errors of the simulator's Go API (callbacks and control).
var (
	ErrUnknownApp  = errors.New("sim: unknown app or account")
	ErrUnknownUser = errors.New("sim: unknown user")
	ErrNoCallback  = errors.New("sim: app has no callback configured (token, encoding_aes_key and a callback URL)")
	ErrNoAnswer    = errors.New("sim: gateway gave no 200 answer")
	ErrBadReply    = errors.New("sim: gateway's passive reply is invalid")
	ErrVerify      = errors.New("sim: URL verification failed")
)
