package wecom

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Contact API error codes the directory acts on.
const (
	CodeUserNotFound       = 60111 // user/get: no such member
	CodeDepartmentNotFound = 60003 // department/list, user/list: no such department
	CodeInvalidTagID       = 40068 // tag/get: no such tag
)

// Department is one department as department/list answers it.
type Department struct {
	ID       int64    `json:"id"`
	Name     string   `json:"name"`
	ParentID int64    `json:"parentid"`
	Order    int64    `json:"order"`
	Leaders  []string `json:"department_leader"`
}

// Member is one member as user/get and user/list answer them (the fields the
// hub uses).
type Member struct {
	UserID         string   `json:"userid"`
	Name           string   `json:"name"`
	Department     []int64  `json:"department"`
	MainDepartment int64    `json:"main_department"`
	Position       string   `json:"position"`
	IsLeaderInDept []int    `json:"is_leader_in_dept"`
	DirectLeader   []string `json:"direct_leader"`
	Email          string   `json:"email"`
	Status         int      `json:"status"`
	ExtAttr        struct {
		Attrs []struct {
			Type int    `json:"type"`
			Name string `json:"name"`
			Text struct {
				Value string `json:"value"`
			} `json:"text"`
		} `json:"attrs"`
	} `json:"extattr"`
}

// Attr returns the text custom field name, or "".
func (m Member) Attr(name string) string {
	for _, a := range m.ExtAttr.Attrs {
		if a.Type == 0 && a.Name == name {
			return a.Text.Value
		}
	}
	return ""
}

// Tag is a tag of tag/list.
type Tag struct {
	ID   int64  `json:"tagid"`
	Name string `json:"tagname"`
}

// TagMembers is tag/get's answer: direct members and departments.
type TagMembers struct {
	Name  string `json:"tagname"`
	Users []struct {
		UserID string `json:"userid"`
		Name   string `json:"name"`
	} `json:"userlist"`
	Parties []int64 `json:"partylist"`
}

func (c *Client) get(ctx context.Context, op, path, token string, q map[string]string, out answer) error {
	req := c.http.R().SetQueryParam("access_token", token).SetQueryParams(q)
	return c.call(ctx, op, req, http.MethodGet, path, out)
}

// ListDepartments is department/list: department id and its subtree (id 0: all).
func (c *Client) ListDepartments(ctx context.Context, token string, id int64) ([]Department, error) {
	var a struct {
		status
		Department []Department `json:"department"`
	}
	q := map[string]string{}
	if id > 0 {
		q["id"] = strconv.FormatInt(id, 10)
	}
	err := c.get(ctx, "department/list", "/cgi-bin/department/list", token, q, &a)
	return a.Department, err
}

// ListMembers is user/list: the members of a department (its subtree with fetchChild).
func (c *Client) ListMembers(ctx context.Context, token string, dept int64, fetchChild bool) ([]Member, error) {
	var a struct {
		status
		UserList []Member `json:"userlist"`
	}
	child := "0"
	if fetchChild {
		child = "1"
	}
	err := c.get(ctx, "user/list", "/cgi-bin/user/list", token,
		map[string]string{"department_id": strconv.FormatInt(dept, 10), "fetch_child": child}, &a)
	return a.UserList, err
}

// GetMember is user/get; a missing member answers CodeUserNotFound.
func (c *Client) GetMember(ctx context.Context, token, userid string) (Member, error) {
	var a struct {
		status
		Member
	}
	err := c.get(ctx, "user/get", "/cgi-bin/user/get", token, map[string]string{"userid": userid}, &a)
	return a.Member, err
}

// ListTags is tag/list.
func (c *Client) ListTags(ctx context.Context, token string) ([]Tag, error) {
	var a struct {
		status
		TagList []Tag `json:"taglist"`
	}
	err := c.get(ctx, "tag/list", "/cgi-bin/tag/list", token, nil, &a)
	return a.TagList, err
}

// GetTag is tag/get.
func (c *Client) GetTag(ctx context.Context, token string, id int64) (TagMembers, error) {
	var a struct {
		status
		TagMembers
	}
	err := c.get(ctx, "tag/get", "/cgi-bin/tag/get", token, map[string]string{"tagid": strconv.FormatInt(id, 10)}, &a)
	return a.TagMembers, err
}

// APICode is the errcode of a WeCom API error, or 0.
func APICode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}
