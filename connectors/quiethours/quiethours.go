// Package quiethours is the built-in connector for do-not-disturb commands:
// "免打扰 22:00-08:00" sets a member's quiet hours, "取消免打扰" turns them off,
// "我的免打扰" shows them. The sender reads the same KV bucket and defers
// non-urgent messages during the window.
package quiethours

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name in routing rules.
const Name = "dnd"

// Rule is the content pattern that routes the commands here.
const Rule = `^\s*(免打扰|取消免打扰|关闭免打扰|我的免打扰|查看免打扰|(?i:dnd))`

// Handler applies the commands to store. def is the company default window
// (nil: none); now is the clock.
func Handler(store *dnd.Store, def *dnd.Window, now func() time.Time) connectors.Handler {
	return connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		user := ev.Data.User
		cmd, w, err := dnd.ParseCommand(ev.Data.Content)
		switch {
		case errors.Is(err, dnd.ErrNotCommand):
			return nil, nil
		case err != nil:
			return reply(user, "格式：免打扰 22:00-08:00（取消免打扰 / 我的免打扰）\nFormat: 免打扰 22:00-08:00"), nil
		}
		switch cmd {
		case dnd.CmdSet:
			if err := store.Set(ctx, user, w, now()); err != nil {
				return nil, err // temporary: the runner retries
			}
			return reply(user, fmt.Sprintf("已设置免打扰 %s：期间的非紧急消息将在结束后送达。", w)), nil
		case dnd.CmdClear:
			if err := store.Clear(ctx, user, now()); err != nil {
				return nil, err
			}
			return reply(user, "已取消免打扰：消息将随时送达。"), nil
		default:
			s, found, err := store.Get(ctx, user)
			if err != nil {
				return nil, err
			}
			if win, ok := dnd.Effective(s, found, def); ok {
				origin := "您设置的"
				if !found {
					origin = "公司默认的"
				}
				return reply(user, fmt.Sprintf("%s免打扰时段：%s（紧急消息除外）。", origin, win)), nil
			}
			return reply(user, "您没有设置免打扰。发送“免打扰 22:00-08:00”即可设置。"), nil
		}
	})
}

func reply(user, text string) []connectors.Reply {
	// Urgent: the confirmation must arrive even inside the window just set.
	return []connectors.Reply{connectors.Text(user, text).WithPriority(schemas.PriorityUrgent)}
}
