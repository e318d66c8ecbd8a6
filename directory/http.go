package directory

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/wxhub/wxhub/schemas"
)

// Access is what a request may read: OK false refuses it (401); Default is
// the corp read without corp= ("" the first); May reports whether it may read
// a corp named by corp= (nil: every corp).
type Access struct {
	OK      bool
	Default string
	May     func(corp string) bool
}

// Handler serves the read API; mount it on "/api/v1/directory/":
//
//	GET /api/v1/directory/users/{id}[?corp=]
//	GET /api/v1/directory/departments/{id}/members[?recursive=1][&corp=]
//	GET /api/v1/directory/tags/{id}/members[?corp=]
//
// authorize decides whether a request may read and which corp it reads by
// default (the gateway's API key check and the corp of the key's apps); corp=
// names another corp: 400 for one the hub does not serve, 403 for one the key
// may not read.
func (s *Store) Handler(authorize func(r *http.Request) Access) http.Handler {
	m := http.NewServeMux()
	guard := func(h func(w http.ResponseWriter, r *http.Request, corp string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var a Access
			if authorize != nil {
				a = authorize(r)
			}
			if !a.OK {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
				return
			}
			corp := a.Default
			if q := r.URL.Query(); q.Has("corp") {
				corp = q.Get("corp")
				switch {
				case corp == "" || corp != s.first && !slices.Contains(s.corps, corp):
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": "corp is not a corp of this hub", "field": "corp"})
					return
				case a.May != nil && !a.May(corp):
					writeJSON(w, http.StatusForbidden, map[string]string{"error": "this API key may not read that corp's directory", "field": "corp"})
					return
				}
			}
			h(w, r, corp)
		}
	}
	m.HandleFunc("GET /api/v1/directory/users/{id}", guard(func(w http.ResponseWriter, r *http.Request, corp string) {
		u, err := s.User(r.Context(), corp, r.PathValue("id"))
		answer(w, u, err)
	}))
	m.HandleFunc("GET /api/v1/directory/departments/{id}/members", guard(func(w http.ResponseWriter, r *http.Request, corp string) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "department id must be a number", "field": "id"})
			return
		}
		recursive := r.URL.Query().Get("recursive")
		if recursive != "" && recursive != "0" && recursive != "1" && recursive != "true" && recursive != "false" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "recursive must be 0 or 1", "field": "recursive"})
			return
		}
		d, err := s.Department(r.Context(), corp, id)
		if err != nil {
			answer(w, nil, err)
			return
		}
		us, err := s.DepartmentMembers(r.Context(), corp, id, recursive == "1" || recursive == "true")
		answer(w, map[string]any{"department": d, "members": nonNil(us)}, err)
	}))
	m.HandleFunc("GET /api/v1/directory/tags/{id}/members", guard(func(w http.ResponseWriter, r *http.Request, corp string) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "tag id must be a number", "field": "id"})
			return
		}
		t, err := s.Tag(r.Context(), corp, id)
		if err != nil {
			answer(w, nil, err)
			return
		}
		us, err := s.TagMembers(r.Context(), corp, id)
		answer(w, map[string]any{"tag": t, "members": nonNil(us)}, err)
	}))
	return m
}

func nonNil(us []schemas.DirUser) []schemas.DirUser {
	if us == nil {
		return []schemas.DirUser{}
	}
	return us
}

func answer(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrUnknownCorp):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "field": "corp"})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
