package wecom

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxMedia bounds a downloaded medium; WeCom's largest temporary media (video,
// file) are 20 MB.
const maxMedia = 21 << 20

// Media is a downloaded medium (media/get).
type Media struct {
	Filename    string
	ContentType string
	Data        []byte
}

// GetMedia downloads temporary media (media/get). WeCom answers the bytes, or
// a JSON error (40007 for an unknown or expired media_id) with status 200.
func (c *Client) GetMedia(ctx context.Context, token, mediaID string) (Media, error) {
	const op = "media/get"
	req := c.http.R().SetContext(ctx).SetDoNotParseResponse(true).
		SetQueryParams(map[string]string{"access_token": token, "media_id": mediaID})
	resp, err := req.Execute(http.MethodGet, "/cgi-bin/media/get")
	if err != nil {
		return Media{}, &TransportError{Op: op, Err: redactURLError(err)}
	}
	body := resp.RawBody()
	defer body.Close()
	raw, err := io.ReadAll(io.LimitReader(body, maxMedia))
	if err != nil {
		return Media{}, &TransportError{Op: op, Err: redactURLError(err)}
	}
	if resp.StatusCode() != http.StatusOK {
		return Media{}, &HTTPError{Op: op, Status: resp.StatusCode()}
	}
	ct := resp.Header().Get("Content-Type")
	// An error is JSON; some proxies label it text/plain, and a text file is
	// text/plain too, so the body decides.
	if strings.HasPrefix(ct, "application/json") || bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`{"errcode"`)) {
		var st status
		if err := json.Unmarshal(raw, &st); err != nil {
			return Media{}, &badResponse{op: op, detail: err.Error()}
		}
		if st.ErrCode != 0 {
			return Media{}, &APIError{Code: st.ErrCode, Msg: st.ErrMsg, Op: op}
		}
		return Media{}, &badResponse{op: op, detail: "a JSON answer without an error"}
	}
	m := Media{ContentType: ct, Data: raw}
	if _, params, err := mime.ParseMediaType(resp.Header().Get("Content-Disposition")); err == nil {
		m.Filename = params["filename"]
	}
	return m, nil
}
