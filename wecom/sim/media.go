package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
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
			ct = contentType(data)
		}
		s.mu.Lock()
		now := s.clock.Now()
		m := &Media{ID: "3" + randomString(40), Type: typ, App: app.Name, Filename: part.FileName(),
			ContentType: ct, Data: data, CreatedAt: now, Uploaded: true}
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
	// An Official Account's token is good too: the account's own media/get
	// (api.weixin.qq.com) has the same shape.
	tok := r.URL.Query().Get("access_token")
	if _, err := s.checkToken(tok); err != nil {
		if _, mpErr := s.mpCheckToken(tok); mpErr != nil {
			s.writeJSON(w, "media/get", nil, err)
			return
		}
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

// mediaExpired reports whether media created at t is past WeCom's 3 days.
func mediaExpired(now, t time.Time) bool { return now.Sub(t) > mediaLifetime }

// Uploads returns the media uploaded through media/upload, oldest first.
func (s *Server) Uploads() []Media {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Media
	for _, m := range s.media {
		if m.Uploaded {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// voiceMagic starts the fake AMR the simulator makes for a played voice
// message (Server.Voice): the header, then the spoken text in UTF-8.
const voiceMagic = "#!AMR\n"

// transcribe is the stand-in speech-to-text service, OpenAI's shape
// (POST /v1/audio/transcriptions, multipart "file" and "model"; answer
// {"text": ...}): it "transcribes" the fake AMR of a played voice by returning
// the text encoded in it, and answers 400 for any other audio.
func (s *Server) transcribe(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Calls["audio/transcriptions"]++
	s.mu.Unlock()
	if err := r.ParseMultipartForm(4 << 20); err != nil {
		jsonErrorOpenAI(w, http.StatusBadRequest, "body is not multipart/form-data: "+err.Error())
		return
	}
	if r.FormValue("model") == "" {
		jsonErrorOpenAI(w, http.StatusBadRequest, "model is required")
		return
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		jsonErrorOpenAI(w, http.StatusBadRequest, "file is required")
		return
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	text, ok := strings.CutPrefix(string(data), voiceMagic)
	if !ok {
		jsonErrorOpenAI(w, http.StatusBadRequest, "the simulator transcribes only the voice messages it played")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"text": text})
}

func jsonErrorOpenAI(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg, "type": "invalid_request_error"}})
}

// contentType is the type media/get answers for data: audio/amr for AMR (as
// WeCom does; Go's sniffer does not know it), else sniffed.
func contentType(data []byte) string {
	if bytes.HasPrefix(data, []byte("#!AMR")) {
		return "audio/amr"
	}
	return http.DetectContentType(data)
}
