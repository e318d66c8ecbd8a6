package directory

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/wxhub/wxhub/schemas"
)

// Handler serves the read API; mount it on "/api/v1/directory/":
//
//	GET /api/v1/directory/users/{id}
//	GET /api/v1/directory/departments/{id}/members[?recursive=1]
//	GET /api/v1/directory/tags/{id}/members
//
// authorize decides whether a request may read (the gateway's API key check);
// a refused request gets 401.
func (s *Store) Handler(authorize func(r *http.Request) bool) http.Handler {
	m := http.NewServeMux()
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if authorize == nil || !authorize(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
				return
			}
			h(w, r)
		}
	}
	m.HandleFunc("GET /api/v1/directory/users/{id}", guard(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.User(r.Context(), r.PathValue("id"))
		answer(w, u, err)
	}))
	m.HandleFunc("GET /api/v1/directory/departments/{id}/members", guard(func(w http.ResponseWriter, r *http.Request) {
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
		d, err := s.Department(r.Context(), id)
		if err != nil {
			answer(w, nil, err)
			return
		}
		us, err := s.DepartmentMembers(r.Context(), id, recursive == "1" || recursive == "true")
		answer(w, map[string]any{"department": d, "members": nonNil(us)}, err)
	}))
	m.HandleFunc("GET /api/v1/directory/tags/{id}/members", guard(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "tag id must be a number", "field": "id"})
			return
		}
		t, err := s.Tag(r.Context(), id)
		if err != nil {
			answer(w, nil, err)
			return
		}
		us, err := s.TagMembers(r.Context(), id)
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
