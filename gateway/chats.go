package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/wxhub/wxhub/schemas"
)

// chatRequest is POST /api/v1/chats: WeCom's appchat/create body plus app and
// an optional first message, so a legacy system opens an incident room in one call.
type chatRequest struct {
	App      string          `json:"app"`
	Name     string          `json:"name,omitempty"`
	Owner    string          `json:"owner,omitempty"`
	UserList []string        `json:"userlist"`
	ChatID   string          `json:"chatid,omitempty"`
	DedupKey string          `json:"dedup_key,omitempty"`
	Message  json.RawMessage `json:"message,omitempty"`
}

type chatAccepted struct {
	ID        string `json:"id"`
	ChatID    string `json:"chatid"`
	Status    string `json:"status"`
	MessageID string `json:"message_id,omitempty"`
}

// createChat queues appchat/create with a chat id chosen here (WeCom accepts
// one), so the caller can send to the chat at once: the sender creates the
// chat first (urgent) and retries a send that arrives before the chat exists.
func (g *Gateway) createChat(w http.ResponseWriter, r *http.Request) {
	key, body, ok := g.readAPIRequest(w, r)
	if !ok {
		return
	}
	acc, err := g.openChat(callerTrace(r), key, body)
	if err != nil {
		writePushError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, acc)
}

func (g *Gateway) openChat(ctx context.Context, key *APIKey, body []byte) (chatAccepted, error) {
	if err := validateBody("chat.v1", body); err != nil {
		return chatAccepted{}, err
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return chatAccepted{}, badField("", "body is not a JSON object")
	}
	if _, ok := g.cfg.WeCom.App(req.App); !ok {
		return chatAccepted{}, badField("app", "no app named %q", req.App)
	}
	if !keyAllows(key, req.App) {
		return chatAccepted{}, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not send through app %q", key.Name, req.App)}
	}
	if req.Owner != "" && !slices.Contains(req.UserList, req.Owner) {
		return chatAccepted{}, badField("owner", "must be one of userlist")
	}
	if req.ChatID == "" {
		req.ChatID = chatIDFor(key.Name, req.DedupKey)
	}
	create, _ := json.Marshal(map[string]any{"name": req.Name, "owner": req.Owner, "userlist": req.UserList, "chatid": req.ChatID})
	acc, err := g.queue(ctx, key, req.App, schemas.KindChatCreate, schemas.PriorityUrgent, req.DedupKey, "", create)
	if err != nil {
		return chatAccepted{}, err
	}
	out := chatAccepted{ID: acc.ID, ChatID: req.ChatID, Status: acc.Status}
	if len(req.Message) > 0 {
		var msg map[string]json.RawMessage
		json.Unmarshal(req.Message, &msg)
		msg["chatid"], _ = json.Marshal(req.ChatID)
		send, _ := json.Marshal(msg)
		first, err := g.queue(ctx, key, req.App, schemas.KindAppChat, schemas.PriorityUrgent, "", acc.ID+"-1", send)
		if err != nil {
			return chatAccepted{}, err
		}
		out.MessageID = first.ID
	}
	return out, nil
}

// chatIDFor derives the chat id from the client's dedup key when the call is
// idempotent (a retried call names the same chat), else picks a random one.
func chatIDFor(client, dedupKey string) string {
	if dedupKey != "" {
		sum := sha256.Sum256([]byte("chat\x00" + client + "\x00" + dedupKey))
		return "wxh" + hex.EncodeToString(sum[:10])
	}
	var b [10]byte
	rand.Read(b[:])
	return "wxh" + hex.EncodeToString(b[:])
}

// validateBody checks body against a JSON Schema of package schemas; a broken
// rule is a 400 naming the field.
func validateBody(schema string, body []byte) error {
	err := schemas.Validate(schema, body)
	var fe *schemas.FieldError
	if errors.As(err, &fe) {
		return badField(fe.Field, "%s", fe.Reason)
	}
	return err
}

// readAPIRequest authenticates an API call and reads its body: 401 without a
// known key, 413 over gateway.max_body_bytes; ok is false when it answered.
func (g *Gateway) readAPIRequest(w http.ResponseWriter, r *http.Request) (key *APIKey, body []byte, ok bool) {
	key, ok = g.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return nil, nil, false
	}
	return key, body, true
}
