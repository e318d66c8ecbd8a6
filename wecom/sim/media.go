package sim

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// mediaLimits are WeCom's size limits for temporary media, by type.
var mediaLimits = map[string]int64{
	"image": 10 << 20,
	"voice": 2 << 20,
	"video": 10 << 20,
	"file":  20 << 20,
}

// minMediaSize: WeCom rejects files of 5 bytes or less.
const minMediaSize = 5

func (s *Server) mediaUpload(r *http.Request, app *App) (map[string]any, error) {
	typ := r.URL.Query().Get("type")
	limit, ok := mediaLimits[typ]
	if !ok {
		return nil, apiErr(CodeInvalidType, "type %q is not one of image, voice, video, file", typ)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 21<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, apiErr(CodeMissingMedia, "body is not multipart/form-data: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, apiErr(CodeMissingMedia, "no form field named \"media\"")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, apiErr(CodeMediaTooLarge, "%s larger than %d bytes", typ, limit)
			}
			return nil, apiErr(CodeMissingMedia, "reading multipart body: %v", err)
		}
		if part.FormName() != "media" {
			_ = part.Close()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return nil, apiErr(CodeMissingMedia, "reading media: %v", err)
		}
		switch {
		case len(data) == 0:
			return nil, apiErr(CodeEmptyMedia, "")
		case len(data) <= minMediaSize:
			return nil, apiErr(CodeInvalidFileSize, "files must be larger than %d bytes", minMediaSize)
		case int64(len(data)) > limit:
			return nil, apiErr(CodeMediaTooLarge, "%s larger than %d bytes", typ, limit)
		}
		ct := part.Header.Get("Content-Type")
		if ct == "" || ct == "application/octet-stream" {
			ct = http.DetectContentType(data)
		}
		s.mu.Lock()
		now := s.clock.Now()
		m := &Media{ID: "3" + randomString(40), Type: typ, App: app.Name, Filename: part.FileName(),
			ContentType: ct, Data: data, CreatedAt: now}
		s.media[m.ID] = m
		s.mu.Unlock()
		return map[string]any{"type": typ, "media_id": m.ID, "created_at": strconv.FormatInt(now.Unix(), 10)}, nil
	}
}

// mediaGet serves media/get: the bytes of uploaded media, or a JSON error.
func (s *Server) mediaGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Calls["media/get"]++
	s.mu.Unlock()
	if _, err := s.checkToken(r.URL.Query().Get("access_token")); err != nil {
		s.writeJSON(w, "media/get", nil, err)
		return
	}
	id := r.URL.Query().Get("media_id")
	m, ok := s.MediaByID(id)
	switch {
	case id == "":
		s.writeJSON(w, "media/get", nil, apiErr(CodeMissingMediaID, ""))
		return
	case !ok || mediaExpired(s.clock.Now(), m.CreatedAt):
		s.writeJSON(w, "media/get", nil, apiErr(CodeInvalidMediaID, "%q", id))
		return
	}
	w.Header().Set("Content-Type", m.ContentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.Filename}))
	w.Header().Set("Content-Length", fmt.Sprint(len(m.Data)))
	_, _ = w.Write(m.Data)
}

func (s *Server) getUserInfo(r *http.Request, _ *App) (map[string]any, error) {
	code := r.URL.Query().Get("code")
	if code == "" {
		return nil, apiErr(CodeMissingOAuthCode, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.oauth[code]
	if !ok {
		return nil, apiErr(CodeInvalidOAuthCode, "unknown or already used code")
	}
	delete(s.oauth, code) // a code is good for one call
	if !s.clock.Now().Before(c.expires) {
		return nil, apiErr(CodeInvalidOAuthCode, "code expired (valid 5 minutes)")
	}
	return map[string]any{"userid": c.user}, nil
}

func (s *Server) userGet(r *http.Request, _ *App) (map[string]any, error) {
	id := r.URL.Query().Get("userid")
	if id == "" {
		return nil, apiErr(CodeMissingUserID, "")
	}
	u, ok := s.book().users[lower(id)]
	if !ok {
		return nil, apiErr(CodeUserNotFound, "%q", id)
	}
	return userJSON(u), nil
}

// mediaExpired reports whether media created at t is past WeCom's 3 days.
func mediaExpired(now, t time.Time) bool { return now.Sub(t) > mediaLifetime }
