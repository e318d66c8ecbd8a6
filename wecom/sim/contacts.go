package sim

// The address book: WeCom's contacts read APIs (department/list, user/list,
// user/get, tag/list, tag/get) answered from the configured departments, users
// and tags, and contact changes that update it and play WeCom's change_contact
// callback to an app.

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// Error codes of the contacts APIs.
const (
	CodeInvalidTagID     = 40068 // invalid tagid
	CodeDepartmentAbsent = 60003 // department not found
	CodeInvalidPartyID   = 60123 // invalid party id
)

func init() {
	errmsgs[CodeInvalidTagID] = "invalid tagid"
	errmsgs[CodeDepartmentAbsent] = "department not found"
	errmsgs[CodeInvalidPartyID] = "invalid party id"
}

// addressBook is an immutable snapshot of the contacts. The whole book holds
// every corp's members (userids are unique across the simulated corps) and
// the configured departments and tags; corps holds each corp's own book,
// which the contacts APIs of that corp's apps answer from.
type addressBook struct {
	list  []User
	users map[string]User // by lower-case userid
	depts []Department
	tags  []Tag
	corps map[string]*addressBook // the whole book only: by corp id
}

// newAddressBook builds the whole book; main is the corp of entries without
// a corp id (Config.CorpID).
func newAddressBook(main string, users []User, depts []Department, tags []Tag) *addressBook {
	b := &addressBook{list: slices.Clone(users), users: map[string]User{}, depts: slices.Clone(depts), tags: slices.Clone(tags),
		corps: map[string]*addressBook{}}
	byCorp := map[string]*addressBook{}
	of := func(corp string) *addressBook {
		if corp == "" {
			corp = main
		}
		if byCorp[corp] == nil {
			byCorp[corp] = &addressBook{users: map[string]User{}}
		}
		return byCorp[corp]
	}
	of(main)
	for _, u := range b.list {
		b.users[lower(u.UserID)] = u
		c := of(u.CorpID)
		c.list = append(c.list, u)
		c.users[lower(u.UserID)] = u
	}
	for _, d := range b.depts {
		c := of(d.CorpID)
		c.depts = append(c.depts, d)
	}
	for _, t := range b.tags {
		c := of(t.CorpID)
		c.tags = append(c.tags, t)
	}
	for corp, c := range byCorp {
		c.defaultDepartments()
		b.corps[corp] = c
	}
	return b
}

// defaultDepartments gives a corp without configured departments root 1 and
// every department a member names, under it.
func (b *addressBook) defaultDepartments() {
	if len(b.depts) > 0 {
		return
	}
	seen := map[int64]bool{1: true}
	b.depts = []Department{{ID: 1, Name: "企业", Order: 100000000}}
	for _, u := range b.list {
		for _, d := range u.Department {
			if !seen[d] {
				seen[d] = true
				b.depts = append(b.depts, Department{ID: d, Name: "部门" + strconv.FormatInt(d, 10), ParentID: 1})
			}
		}
	}
}

func (s *Server) book() *addressBook { return s.addressBook.Load() }

// bookOf is the address book of corp (an empty one with root 1 for a corp
// without members).
func (s *Server) bookOf(corp string) *addressBook {
	if c := s.book().corps[corp]; c != nil {
		return c
	}
	c := &addressBook{users: map[string]User{}}
	c.defaultDepartments()
	return c
}

func (b *addressBook) dept(id int64) (Department, bool) {
	for _, d := range b.depts {
		if d.ID == id {
			return d, true
		}
	}
	return Department{}, false
}

// subtree is id and every department under it.
func (b *addressBook) subtree(id int64) []int64 {
	out := []int64{id}
	for i := 0; i < len(out); i++ {
		for _, d := range b.depts {
			if d.ParentID == out[i] && d.ID != out[i] {
				out = append(out, d.ID)
			}
		}
	}
	return out
}

func (s *Server) contactRoutes(m *http.ServeMux) {
	m.HandleFunc("/cgi-bin/department/list", s.api("department/list", true, "", s.departmentList))
	m.HandleFunc("/cgi-bin/user/list", s.api("user/list", true, "", s.userList))
	m.HandleFunc("/cgi-bin/tag/list", s.api("tag/list", true, "", s.tagList))
	m.HandleFunc("/cgi-bin/tag/get", s.api("tag/get", true, "", s.tagGet))
	m.HandleFunc("GET /connect/oauth2/authorize", s.oauthAuthorize)
	m.HandleFunc("GET /wwlogin/sso/login", s.webLogin)
	m.HandleFunc("POST /sim/contacts/users", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			App  string `json:"app"`
			User User   `json:"user"`
		}
		if !readBody(w, r, &body) {
			return
		}
		s.writeDelivery(w, func(ctx context.Context) (*Delivery, error) { return s.PutUser(ctx, body.App, body.User) }, r)
	})
	m.HandleFunc("DELETE /sim/contacts/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.writeDelivery(w, func(ctx context.Context) (*Delivery, error) {
			return s.DeleteUser(ctx, r.URL.Query().Get("app"), r.PathValue("id"))
		}, r)
	})
}

// PutUser adds or replaces a member and plays change_contact to app (see Server.PutUser).
func (r *Remote) PutUser(ctx context.Context, app string, u User) (*Delivery, error) {
	return r.play(ctx, "/sim/contacts/users", map[string]any{"app": app, "user": u})
}

func deptJSON(d Department) map[string]any {
	leaders := d.Leaders
	if leaders == nil {
		leaders = []string{}
	}
	return map[string]any{"id": d.ID, "name": d.Name, "parentid": d.ParentID, "order": d.Order, "department_leader": leaders}
}

// departmentList is GET department/list?id= : the department and its subtree
// (every department without id).
func (s *Server) departmentList(r *http.Request, app *App) (map[string]any, error) {
	b := s.bookOf(s.corpOf(app))
	ids := []int64{}
	if v := r.URL.Query().Get("id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return nil, apiErr(CodeInvalidPartyID, "id %q", v)
		}
		if _, ok := b.dept(id); !ok {
			return nil, apiErr(CodeDepartmentAbsent, "id %d", id)
		}
		ids = b.subtree(id)
	} else {
		for _, d := range b.depts {
			ids = append(ids, d.ID)
		}
	}
	out := []map[string]any{}
	for _, id := range ids {
		d, _ := b.dept(id)
		out = append(out, deptJSON(d))
	}
	return map[string]any{"department": out}, nil
}

func (s *Server) userGet(r *http.Request, app *App) (map[string]any, error) {
	id := r.URL.Query().Get("userid")
	if id == "" {
		return nil, apiErr(CodeMissingUserID, "")
	}
	u, ok := s.bookOf(s.corpOf(app)).users[lower(id)] // user ids are per corp
	if !ok {
		return nil, apiErr(CodeUserNotFound, "%q", id)
	}
	return userJSON(u), nil
}

// userJSON is a member as user/get and user/list answer it.
func userJSON(u User) map[string]any {
	dept := u.Department
	if dept == nil {
		dept = []int64{}
	}
	leader := u.IsLeaderInDept
	if len(leader) != len(dept) {
		leader = make([]int, len(dept))
		copy(leader, u.IsLeaderInDept)
	}
	direct := u.DirectLeader
	if direct == nil {
		direct = []string{}
	}
	order := make([]int64, len(dept))
	attrs := []map[string]any{}
	names := make([]string, 0, len(u.ExtAttr))
	for k := range u.ExtAttr {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		attrs = append(attrs, map[string]any{"type": 0, "name": k, "text": map[string]string{"value": u.ExtAttr[k]}})
	}
	m := map[string]any{
		"userid": u.UserID, "name": u.Name, "department": dept, "order": order, "position": u.Position,
		"mobile": u.Mobile, "gender": u.Gender, "email": u.Email, "is_leader_in_dept": leader,
		"direct_leader": direct, "status": 1, "enable": 1, "extattr": map[string]any{"attrs": attrs},
	}
	if len(dept) > 0 {
		m["main_department"] = dept[0]
	}
	return m
}

// userList is GET user/list?department_id=&fetch_child= : the members of a
// department (and of its subtree with fetch_child=1).
func (s *Server) userList(r *http.Request, app *App) (map[string]any, error) {
	b := s.bookOf(s.corpOf(app))
	q := r.URL.Query()
	id, err := strconv.ParseInt(q.Get("department_id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, apiErr(CodeInvalidPartyID, "department_id %q", q.Get("department_id"))
	}
	if _, ok := b.dept(id); !ok {
		return nil, apiErr(CodeDepartmentAbsent, "department_id %d", id)
	}
	ids := []int64{id}
	if q.Get("fetch_child") == "1" {
		ids = b.subtree(id)
	}
	out := []map[string]any{}
	for _, u := range b.list {
		for _, d := range u.Department {
			if slices.Contains(ids, d) {
				out = append(out, userJSON(u))
				break
			}
		}
	}
	return map[string]any{"userlist": out}, nil
}

func (s *Server) tagList(_ *http.Request, app *App) (map[string]any, error) {
	out := []map[string]any{}
	for _, t := range s.bookOf(s.corpOf(app)).tags {
		out = append(out, map[string]any{"tagid": t.ID, "tagname": t.Name})
	}
	return map[string]any{"taglist": out}, nil
}

// tagGet is GET tag/get?tagid= : the tag's direct members and departments.
func (s *Server) tagGet(r *http.Request, app *App) (map[string]any, error) {
	b := s.bookOf(s.corpOf(app))
	v := r.URL.Query().Get("tagid")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, apiErr(CodeInvalidTagID, "tagid %q", v)
	}
	i := slices.IndexFunc(b.tags, func(t Tag) bool { return t.ID == id })
	if i < 0 {
		return nil, apiErr(CodeInvalidTagID, "tagid %d", id)
	}
	users := []map[string]string{}
	for _, u := range b.list {
		if contains(u.Tags, id) {
			users = append(users, map[string]string{"userid": u.UserID, "name": u.Name})
		}
	}
	parties := b.tags[i].Parties
	if parties == nil {
		parties = []int64{}
	}
	return map[string]any{"tagname": b.tags[i].Name, "userlist": users, "partylist": parties}, nil
}

// PutUser adds or replaces a member (matched by userid, case-insensitively)
// and, when app is not empty, plays the change_contact callback WeCom sends
// (create_user or update_user) to that app. A member without a corp id is
// in app's corp (Config.CorpID without app).
func (s *Server) PutUser(ctx context.Context, app string, u User) (*Delivery, error) {
	if !userIDRe.MatchString(u.UserID) {
		return nil, fmt.Errorf("%w: userid %q", ErrConfig, u.UserID)
	}
	if a := s.appsByName[app]; a != nil {
		switch {
		case u.CorpID == "":
			u.CorpID = s.corpOf(a)
		case u.CorpID != s.corpOf(a):
			return nil, fmt.Errorf("%w: member %q of corp %s, change_contact to app %q of corp %s", ErrConfig, u.UserID, u.CorpID, app, s.corpOf(a))
		}
	}
	if u.CorpID == s.cfg.CorpID {
		u.CorpID = "" // stored as configured: the main corp's have none
	}
	s.bookMu.Lock()
	b := s.book()
	change := "create_user"
	list := slices.Clone(b.list)
	if i := slices.IndexFunc(list, func(x User) bool { return lower(x.UserID) == lower(u.UserID) }); i >= 0 {
		change = "update_user"
		list[i] = u
	} else {
		list = append(list, u)
	}
	s.addressBook.Store(newAddressBook(s.cfg.CorpID, list, b.depts, b.tags))
	s.bookMu.Unlock()
	if app == "" {
		return nil, nil
	}
	depts := make([]string, len(u.Department))
	for i, d := range u.Department {
		depts[i] = strconv.FormatInt(d, 10)
	}
	return s.contactEvent(ctx, app, change, map[string]string{
		"UserID": u.UserID, "Name": u.Name, "Department": strings.Join(depts, ","), "Position": u.Position,
	})
}

// DeleteUser removes a member and plays change_contact delete_user to app
// (when not empty).
func (s *Server) DeleteUser(ctx context.Context, app, userid string) (*Delivery, error) {
	s.bookMu.Lock()
	b := s.book()
	list := slices.DeleteFunc(slices.Clone(b.list), func(x User) bool { return lower(x.UserID) == lower(userid) })
	if len(list) == len(b.list) {
		s.bookMu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, userid)
	}
	s.addressBook.Store(newAddressBook(s.cfg.CorpID, list, b.depts, b.tags))
	s.bookMu.Unlock()
	if app == "" {
		return nil, nil
	}
	return s.contactEvent(ctx, app, "delete_user", map[string]string{"UserID": userid})
}

// contactEvent posts a change_contact event, as WeCom does, from "sys".
func (s *Server) contactEvent(ctx context.Context, app, change string, fields map[string]string) (*Delivery, error) {
	t, err := s.target(app)
	if err != nil {
		return nil, err
	}
	if t.mp {
		return nil, fmt.Errorf("sim: change_contact goes to WeCom apps, not to account %q", app)
	}
	plain, err := wecom.BuildInbound(schemas.EventData{
		ToUser: t.toUser, User: "sys", CreateTime: s.clock.Now().Unix(), MsgType: "event",
		Event: "change_contact", ChangeType: change, Extra: fields,
	})
	if err != nil {
		return nil, fmt.Errorf("sim: build change_contact XML: %w", err)
	}
	return s.post(ctx, t, plain)
}

// oauthAuthorize is WeCom's /connect/oauth2/authorize page as the WeCom app's
// browser sees it: the member is whoever the sim_user cookie (or the sim_user
// query parameter, which sets it) names; without one, a page to pick a member.
// It sends the browser to redirect_uri with a one-time code and the state.
func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case !s.knownCorp(q.Get("appid")):
		http.Error(w, "sim: oauth2 authorize: appid is not the corp id", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code":
		http.Error(w, "sim: oauth2 authorize: response_type must be code", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "" {
		http.Error(w, "sim: oauth2 authorize: redirect_uri must be an absolute URL", http.StatusBadRequest)
		return
	}
	if agent := q.Get("agentid"); agent != "" {
		n, _ := strconv.ParseInt(agent, 10, 64)
		if s.appsByAgent[n] == nil {
			http.Error(w, "sim: oauth2 authorize: unknown agentid", http.StatusBadRequest)
			return
		}
	}
	s.pickAndRedirect(w, r, redirect, "选择成员")
}

// webLogin is WeCom's web login page (企业微信扫码登录, /wwlogin/sso/login) for
// a desktop browser: the real page shows a QR code scanned with the WeCom
// app; here the scanner is the member the sim_user cookie or parameter names,
// else a page to pick one ("scan as"). It returns to redirect_uri with a
// one-time code and the state, as WeCom does after the scan is confirmed.
func (s *Server) webLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("login_type") != "CorpApp" {
		http.Error(w, "sim: wwlogin: login_type must be CorpApp (or ServiceApp, not simulated)", http.StatusBadRequest)
		return
	}
	n, _ := strconv.ParseInt(q.Get("agentid"), 10, 64)
	if s.appsByAgent[n] == nil {
		http.Error(w, "sim: wwlogin: agentid is required for CorpApp and must name an app", http.StatusBadRequest)
		return
	}
	if q.Get("appid") != s.corpOf(s.appsByAgent[n]) {
		http.Error(w, "sim: wwlogin: appid is not the app's corp id", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "" {
		http.Error(w, "sim: wwlogin: redirect_uri must be an absolute URL", http.StatusBadRequest)
		return
	}
	s.pickAndRedirect(w, r, redirect, "企业微信扫码登录：扫码的成员")
}

// pickAndRedirect names the member (sim_user) or shows the page to pick one,
// then sends the browser to redirect with a one-time code and the state.
func (s *Server) pickAndRedirect(w http.ResponseWriter, r *http.Request, redirect *url.URL, title string) {
	q := r.URL.Query()
	user := q.Get("sim_user")
	if user != "" {
		http.SetCookie(w, &http.Cookie{Name: "sim_user", Value: user, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	} else if c, err := r.Cookie("sim_user"); err == nil {
		user = c.Value
	}
	if user == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><meta charset=utf-8><title>企业微信 (模拟)</title><h1>"+html.EscapeString(title)+"</h1><ul>")
		for _, u := range s.book().list {
			qq := r.URL.Query()
			qq.Set("sim_user", u.UserID)
			fmt.Fprintf(w, `<li><a id="as-%s" href="?%s">%s (%s)</a>`, html.EscapeString(u.UserID), html.EscapeString(qq.Encode()), html.EscapeString(u.Name), html.EscapeString(u.UserID))
		}
		fmt.Fprint(w, "</ul>")
		return
	}
	code, err := s.IssueOAuthCode(user)
	if err != nil {
		http.Error(w, "sim: "+err.Error(), http.StatusForbidden)
		return
	}
	rq := redirect.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}
