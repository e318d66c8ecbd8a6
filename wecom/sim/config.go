package sim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrConfig is wrapped by every configuration error; the message names the field at fault.
var ErrConfig = errors.New("sim: invalid config")

// Config describes the simulated corp: its apps, Official Accounts, members and limits.
// Zero values take the documented defaults (see WithDefaults); a negative limit disables it.
type Config struct {
	// Listen is the address Serve listens on. Default 127.0.0.1:8090.
	Listen string `yaml:"listen"`
	// CorpID is the corp id (receive id of WeCom callbacks). Default ww0123456789abcdef.
	CorpID string `yaml:"corp_id"`
	// GatewayURL is the base URL callbacks are posted to when an app or account has no
	// CallbackURL: {GatewayURL}/wecom/{app}/callback and {GatewayURL}/mp/{account}/callback.
	GatewayURL string `yaml:"gateway_url"`
	// Apps are the corp's self-built apps.
	Apps []App `yaml:"apps"`
	// Accounts are Official Accounts (服务号) whose callbacks the simulator plays.
	Accounts []Account `yaml:"accounts"`
	// Users are the corp's members (the address book). Unknown userids are reported
	// as invaliduser by message/send, as WeCom does.
	Users []User `yaml:"users"`
	// Departments are the corp's departments (department/list). Empty: one root
	// department 1 plus every department a user names, under it.
	Departments []Department `yaml:"departments"`
	// Tags are the corp's tags (tag/list, tag/get); members name them in users[].tags.
	Tags []Tag `yaml:"tags"`
	// TokenLifetime is how long an access_token lives. Default 7200s, as WeCom.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// Limits are WeCom's send limits; defaults are WeCom's documented values.
	Limits Limits `yaml:"limits"`
	// Callback tunes how the simulator plays WeChat's side of callbacks.
	Callback CallbackConfig `yaml:"callback"`
}

// App is a WeCom self-built app.
type App struct {
	Name           string `yaml:"name"`             // the app's name in wxhub's config (used in /wecom/{name}/callback)
	AgentID        int64  `yaml:"agent_id"`         // AgentId
	Secret         string `yaml:"secret"`           // corpsecret for gettoken
	Token          string `yaml:"token"`            // callback Token
	EncodingAESKey string `yaml:"encoding_aes_key"` // callback EncodingAESKey, 43 characters
	CallbackURL    string `yaml:"callback_url"`     // overrides GatewayURL + /wecom/{name}/callback
	// CorpID is the app's corp when the simulator plays several corps (one API
	// host, as WeCom's); empty: Config.CorpID. Agent ids stay unique across them.
	CorpID string `yaml:"corp_id"`
}

// Account is a WeChat Official Account. Its callbacks use the AppID as receive id and
// carry openids as FromUserName; voice messages carry Recognition when Recognition is on.
type Account struct {
	Name           string `yaml:"name"`             // the account's name in wxhub's config (/mp/{name}/callback)
	AppID          string `yaml:"app_id"`           // appid: the receive id of its callbacks
	OriginalID     string `yaml:"original_id"`      // gh_... : ToUserName of its callbacks. Default "gh_" + name.
	Token          string `yaml:"token"`            // callback Token
	EncodingAESKey string `yaml:"encoding_aes_key"` // callback EncodingAESKey, 43 characters
	CallbackURL    string `yaml:"callback_url"`     // overrides GatewayURL + /mp/{name}/callback
	Recognition    bool   `yaml:"recognition"`      // voice recognition on: voice messages carry Recognition
	// Mode is the account's message mode (消息加解密方式): "safe" (default,
	// encrypted), "compatible" (plain fields and Encrypt) or "plain". URL
	// verification is the same in all three.
	Mode string `yaml:"mode"`
	// Secret is the AppSecret for /cgi-bin/token; empty: the account's API answers 40125.
	Secret string `yaml:"secret"`
	// Followers are openids that follow the account from the start (template
	// messages may go to them). Anyone who plays a message or event is a follower
	// too; other openids get 40003 from the send APIs.
	Followers []string `yaml:"followers"`
	// Templates are the account's template library (模板库) for
	// message/template/send: an unknown template_id gets 40037 and data missing
	// one of a template's keys gets 47003. Empty: any template_id is accepted.
	Templates []Template `yaml:"templates"`
}

// Official Account message modes (Account.Mode).
const (
	ModeSafe       = "safe"
	ModeCompatible = "compatible"
	ModePlain      = "plain"
)

// Template is one template of an Official Account's library: its id and the
// keys of its {{key.DATA}} placeholders.
type Template struct {
	ID    string   `yaml:"id"`
	Title string   `yaml:"title"`
	Keys  []string `yaml:"keys"` // e.g. first, keyword1, keyword2, remark
}

// User is a member of the corp's address book.
type User struct {
	UserID     string  `yaml:"userid" json:"userid"`
	Name       string  `yaml:"name" json:"name"`
	Department []int64 `yaml:"department" json:"department"`
	Tags       []int64 `yaml:"tags" json:"tags,omitempty"`
	Position   string  `yaml:"position" json:"position,omitempty"`
	Mobile     string  `yaml:"mobile" json:"mobile,omitempty"`
	Email      string  `yaml:"email" json:"email,omitempty"`
	Gender     string  `yaml:"gender" json:"gender,omitempty"` // "1" male, "2" female, as WeCom
	// IsLeaderInDept is parallel to Department: 1 where the member leads it.
	IsLeaderInDept []int `yaml:"is_leader_in_dept" json:"is_leader_in_dept,omitempty"`
	// DirectLeader are the member's direct superiors (userids).
	DirectLeader []string `yaml:"direct_leader" json:"direct_leader,omitempty"`
	// ExtAttr are text custom fields (extattr), e.g. {"工号": "A001"}.
	ExtAttr map[string]string `yaml:"extattr" json:"extattr,omitempty"`
	// CorpID is the member's corp when the simulator plays several corps
	// (an App.CorpID); empty: Config.CorpID. Userids stay unique across corps.
	CorpID string `yaml:"corp_id" json:"corp_id,omitempty"`
}

// Department is a department of the address book.
type Department struct {
	ID       int64    `yaml:"id" json:"id"`
	Name     string   `yaml:"name" json:"name"`
	ParentID int64    `yaml:"parentid" json:"parentid"`
	Order    int64    `yaml:"order" json:"order"`
	Leaders  []string `yaml:"department_leader" json:"department_leader,omitempty"`
	// CorpID is the department's corp (an App.CorpID); empty: Config.CorpID.
	// Department ids are unique within a corp: each corp has its root 1.
	CorpID string `yaml:"corp_id" json:"corp_id,omitempty"`
}

// Tag is a tag of the address book; its members are the users naming it in
// their tags plus every member of Parties.
type Tag struct {
	ID      int64   `yaml:"tagid" json:"tagid"`
	Name    string  `yaml:"tagname" json:"tagname"`
	Parties []int64 `yaml:"parties" json:"parties,omitempty"`
	// CorpID is the tag's corp (an App.CorpID); empty: Config.CorpID.
	CorpID string `yaml:"corp_id" json:"corp_id,omitempty"`
}

// Limits are the send limits the simulator enforces. Zero means the default, negative
// means no limit.
type Limits struct {
	// MemberPerMinute: messages one app may deliver to one member in any 60 s window.
	// Past it WeCom answers errcode 0 and silently drops the message. Default 30.
	MemberPerMinute int `yaml:"member_per_minute"`
	// MemberPerHour: the same over any 3600 s window. Default 1000.
	MemberPerHour int `yaml:"member_per_hour"`
	// ChatMemberPerMinute: group chat (appchat) messages a member receives in any 60 s
	// window; the excess is silently dropped. Default 200.
	ChatMemberPerMinute int `yaml:"chat_member_per_minute"`
	// APIPerMinute: calls per API per corp in any 60 s window; past it 45009. Default 10000.
	APIPerMinute int `yaml:"api_per_minute"`
	// APIPerHour: calls per API per corp in any 3600 s window; past it 45009. Default 150000.
	APIPerHour int `yaml:"api_per_hour"`
	// AppDailyRecipients: recipients (人次) one app may send to per day (UTC+8 calendar
	// day). WeCom allows 200 x the corp's seat limit; past it 45009. Default 100000.
	AppDailyRecipients int `yaml:"app_daily_recipients"`
	// DuplicateCheck is what a message/send with enable_duplicate_check is
	// compared against within its interval: "all" (default) every message
	// delivered with the same content to the same recipients, flagged or not;
	// "flagged" only earlier messages that were themselves flagged. WeCom does
	// not document which; the hub must lose no answer under either.
	DuplicateCheck string `yaml:"duplicate_check"`
}

// Duplicate-check scopes (Limits.DuplicateCheck).
const (
	DuplicateCheckAll     = "all"
	DuplicateCheckFlagged = "flagged"
)

// CallbackConfig tunes the WeChat side of callbacks.
type CallbackConfig struct {
	// Timeout is how long the simulator waits for the gateway's answer before it
	// counts the attempt as failed. Default 5s, as WeChat.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts is the number of tries in all (WeChat: 1 + 2 retries). Default 3.
	Attempts int `yaml:"attempts"`
	// VerifyTimeout bounds the URL-verification GET. Default 1s, as WeCom.
	VerifyTimeout time.Duration `yaml:"verify_timeout"`
}

// Defaults.
const (
	DefaultListen              = "127.0.0.1:8090"
	DefaultCorpID              = "ww0123456789abcdef"
	DefaultTokenLifetime       = 7200 * time.Second
	DefaultMemberPerMinute     = 30
	DefaultMemberPerHour       = 1000
	DefaultChatMemberPerMinute = 200
	DefaultAPIPerMinute        = 10000
	DefaultAPIPerHour          = 150000
	DefaultAppDailyRecipients  = 100000
	DefaultCallbackTimeout     = 5 * time.Second
	DefaultCallbackAttempts    = 3
	DefaultVerifyTimeout       = time.Second
)

// WithDefaults returns a copy of c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	if c.Limits.DuplicateCheck == "" {
		c.Limits.DuplicateCheck = DuplicateCheckAll
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.CorpID == "" {
		c.CorpID = DefaultCorpID
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	l := &c.Limits
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MemberPerMinute, DefaultMemberPerMinute)
	def(&l.MemberPerHour, DefaultMemberPerHour)
	def(&l.ChatMemberPerMinute, DefaultChatMemberPerMinute)
	def(&l.APIPerMinute, DefaultAPIPerMinute)
	def(&l.APIPerHour, DefaultAPIPerHour)
	def(&l.AppDailyRecipients, DefaultAppDailyRecipients)
	if c.Callback.Timeout == 0 {
		c.Callback.Timeout = DefaultCallbackTimeout
	}
	if c.Callback.Attempts == 0 {
		c.Callback.Attempts = DefaultCallbackAttempts
	}
	if c.Callback.VerifyTimeout == 0 {
		c.Callback.VerifyTimeout = DefaultVerifyTimeout
	}
	c.Apps = append([]App(nil), c.Apps...)
	c.Accounts = append([]Account(nil), c.Accounts...)
	for i := range c.Accounts {
		c.Accounts[i].Followers = append([]string(nil), c.Accounts[i].Followers...)
		if c.Accounts[i].OriginalID == "" {
			c.Accounts[i].OriginalID = "gh_" + c.Accounts[i].Name
		}
	}
	c.Users = append([]User(nil), c.Users...)
	c.Departments = append([]Department(nil), c.Departments...)
	c.Tags = append([]Tag(nil), c.Tags...)
	return c
}

var (
	userIDRe = regexp.MustCompile(`^[0-9A-Za-z_.@-]{1,64}$`)
	openIDRe = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)
)

// DemoTemplateShipped is the demo account's order-shipped template (keys
// first, keyword1 = order number, keyword2 = carrier, remark).
const DemoTemplateShipped = "tpl_order_shipped"

// DemoOpenIDs are the followers of the demo Official Account "service" (28
// characters, the shape of real openids).
var DemoOpenIDs = []string{"o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "oK3Hq5yVJpZ1n8Wd4xR2sT7uLm9A", "oP0cN4eGf6hJ8kL1mQ3rS5tV7wX9"}

// Validate reports the first invalid field, wrapping ErrConfig.
func (c Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
	}
	if c.CorpID == "" {
		return bad("corp_id", "empty")
	}
	if c.TokenLifetime < 0 {
		return bad("token_lifetime", "negative")
	}
	if c.Callback.Timeout < 0 || c.Callback.VerifyTimeout < 0 {
		return bad("callback.timeout", "negative")
	}
	if c.Callback.Attempts < 0 {
		return bad("callback.attempts", "negative")
	}
	names := map[string]string{}
	agents := map[int64]bool{}
	secrets := map[string]bool{}
	for i, a := range c.Apps {
		f := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Name == "":
			return bad(f+".name", "empty")
		case names[a.Name] != "":
			return bad(f+".name", "%q used twice", a.Name)
		case a.AgentID <= 0:
			return bad(f+".agent_id", "must be a positive number")
		case agents[a.AgentID]:
			return bad(f+".agent_id", "%d used twice", a.AgentID)
		case a.Secret == "":
			return bad(f+".secret", "empty")
		case secrets[a.Secret]:
			return bad(f+".secret", "shared with another app (WeCom gives each app its own)")
		}
		if a.EncodingAESKey != "" && len(a.EncodingAESKey) != 43 {
			return bad(f+".encoding_aes_key", "must be 43 characters, got %d", len(a.EncodingAESKey))
		}
		names[a.Name] = "app"
		agents[a.AgentID] = true
		secrets[a.Secret] = true
	}
	for i, a := range c.Accounts {
		f := fmt.Sprintf("accounts[%d]", i)
		switch {
		case a.Name == "":
			return bad(f+".name", "empty")
		case names[a.Name] != "":
			return bad(f+".name", "%q already names an app or account", a.Name)
		case a.AppID == "":
			return bad(f+".app_id", "empty")
		case len(a.EncodingAESKey) != 43:
			return bad(f+".encoding_aes_key", "must be 43 characters, got %d", len(a.EncodingAESKey))
		case a.Token == "":
			return bad(f+".token", "empty")
		case a.Mode != "" && a.Mode != ModeSafe && a.Mode != ModeCompatible && a.Mode != ModePlain:
			return bad(f+".mode", "%q: want safe, compatible or plain", a.Mode)
		}
		for j, o := range a.Followers {
			if !openIDRe.MatchString(o) {
				return bad(fmt.Sprintf("%s.followers[%d]", f, j), "%q is not an openid (1-64 of 0-9 A-Z a-z _ -)", o)
			}
		}
		for j, tp := range a.Templates {
			if tp.ID == "" || len(tp.Keys) == 0 {
				return bad(fmt.Sprintf("%s.templates[%d]", f, j), "needs an id and at least one key")
			}
		}
		names[a.Name] = "account"
	}
	corps := map[string]bool{c.CorpID: true}
	for _, a := range c.Apps {
		if a.CorpID != "" {
			corps[a.CorpID] = true
		}
	}
	corpOf := func(field, id string) (string, error) {
		if id == "" {
			return c.CorpID, nil
		}
		if !corps[id] {
			return "", bad(field+".corp_id", "%q is no app's corp", id)
		}
		return id, nil
	}
	type deptKey struct {
		corp string
		id   int64
	}
	users := map[string]bool{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d].userid", i)
		if !userIDRe.MatchString(u.UserID) {
			return bad(f, "%q is not a valid userid (1-64 of 0-9 A-Z a-z _ . @ -)", u.UserID)
		}
		k := lower(u.UserID)
		if users[k] {
			return bad(f, "%q used twice (userids are case-insensitive)", u.UserID)
		}
		users[k] = true
		if _, err := corpOf(fmt.Sprintf("users[%d]", i), u.CorpID); err != nil {
			return err
		}
	}
	depts := map[deptKey]bool{}
	hasDepts := map[string]bool{} // corps with configured departments
	for i, d := range c.Departments {
		f := fmt.Sprintf("departments[%d]", i)
		corp, err := corpOf(f, d.CorpID)
		switch {
		case err != nil:
			return err
		case d.ID <= 0:
			return bad(f+".id", "must be a positive number")
		case depts[deptKey{corp, d.ID}]:
			return bad(f+".id", "%d used twice in corp %s", d.ID, corp)
		case d.Name == "":
			return bad(f+".name", "empty")
		}
		depts[deptKey{corp, d.ID}] = true
		hasDepts[corp] = true
	}
	for i, d := range c.Departments {
		corp, _ := corpOf("", d.CorpID)
		if d.ParentID != 0 && !depts[deptKey{corp, d.ParentID}] {
			return bad(fmt.Sprintf("departments[%d].parentid", i), "no department %d in corp %s", d.ParentID, corp)
		}
	}
	for i, u := range c.Users {
		corp, _ := corpOf("", u.CorpID)
		if !hasDepts[corp] {
			continue
		}
		for _, d := range u.Department {
			if !depts[deptKey{corp, d}] {
				return bad(fmt.Sprintf("users[%d].department", i), "no department %d in corp %s", d, corp)
			}
		}
	}
	tags := map[deptKey]bool{}
	for i, t := range c.Tags {
		f := fmt.Sprintf("tags[%d]", i)
		corp, err := corpOf(f, t.CorpID)
		switch {
		case err != nil:
			return err
		case t.ID <= 0:
			return bad(f+".tagid", "must be a positive number")
		case tags[deptKey{corp, t.ID}]:
			return bad(f+".tagid", "%d used twice in corp %s", t.ID, corp)
		case t.Name == "":
			return bad(f+".tagname", "empty")
		}
		tags[deptKey{corp, t.ID}] = true
	}
	return nil
}

// DemoConfig is the demo corp that `wxhub demo` and the examples use: corp
// ww0123456789abcdef, app "helpdesk" (agent 1000002) and a handful of members.
func DemoConfig() Config {
	return Config{
		CorpID:     DefaultCorpID,
		GatewayURL: "http://127.0.0.1:8080",
		Apps: []App{{
			Name:           "helpdesk",
			AgentID:        1000002,
			Secret:         "helpdesk-demo-secret",
			Token:          "QDG6eK",
			EncodingAESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
		}},
		Accounts: []Account{{
			Name:           "service",
			AppID:          "wx5823bf96d3bd56c7",
			OriginalID:     "gh_0123456789ab",
			Token:          "QDG6eK",
			EncodingAESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
			Recognition:    true,
			Secret:         "service-demo-secret",
			Followers:      append([]string(nil), DemoOpenIDs...),
			Templates: []Template{{ID: DemoTemplateShipped, Title: "订单发货通知",
				Keys: []string{"first", "keyword1", "keyword2", "remark"}}},
		}},
		Departments: []Department{
			{ID: 1, Name: "示例公司", Order: 100000000},
			{ID: 2, Name: "销售部", ParentID: 1, Order: 100, Leaders: []string{"zhangsan"}},
			{ID: 3, Name: "财务部", ParentID: 1, Order: 90, Leaders: []string{"lisi"}},
			{ID: 4, Name: "人事行政部", ParentID: 1, Order: 80, Leaders: []string{"zhaoliu"}},
		},
		Tags: []Tag{{ID: 1, Name: "品牌大使"}},
		Users: []User{
			{UserID: "zhangsan", Name: "张三", Department: []int64{1, 2}, IsLeaderInDept: []int{0, 1}, Position: "销售经理", Gender: "1", Tags: []int64{1}, ExtAttr: map[string]string{"工号": "A001"}},
			{UserID: "lisi", Name: "李四", Department: []int64{1, 3}, IsLeaderInDept: []int{0, 1}, Position: "财务", Gender: "1", ExtAttr: map[string]string{"工号": "A002"}},
			{UserID: "wangwu", Name: "王五", Department: []int64{1, 2}, Position: "设计师", Gender: "1", Tags: []int64{1}},
			{UserID: "zhaoliu", Name: "赵六", Department: []int64{1, 4}, Position: "人事", Gender: "2"},
			{UserID: "sunqi", Name: "孙七", Department: []int64{1, 3}, Position: "出纳", Gender: "2"},
			{UserID: "zhouba", Name: "周八", Department: []int64{1, 4}, Position: "IT 支持", Gender: "1"},
		},
	}
}

// LoadConfig reads a simulator config from a YAML file (unknown keys are errors);
// an empty path gives DemoConfig. Defaults are applied and the result validated.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return DemoConfig().WithDefaults(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("sim: config: %w", err)
	}
	defer f.Close()
	var c Config
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
