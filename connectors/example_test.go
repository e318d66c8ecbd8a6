package connectors_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

var errUnknownOrder = errors.New("unknown order")

// lookupOrder stands for a call to the legacy ERP.
func lookupOrder(_ context.Context, id string) (string, error) {
	if id == "1001" {
		return "已发货", nil
	}
	return "", errUnknownOrder
}

// A connector is a handler: take the event, call the legacy system, return the replies.
func ExampleHandlerFunc() {
	erp := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		id := strings.TrimSpace(strings.TrimPrefix(ev.Data.Content, "订单"))
		status, err := lookupOrder(ctx, id)
		if errors.Is(err, errUnknownOrder) {
			// Retrying will not help: tell the user, and do not dead-letter.
			return []connectors.Reply{connectors.Text(ev.Data.User, "没有找到订单 "+id)}, nil
		}
		if err != nil {
			return nil, err // retried with backoff, then dead-lettered
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "订单 "+id+": "+status)}, nil
	})
	replies, _ := erp.Handle(context.Background(), &schemas.Event{Data: schemas.EventData{User: "zhangsan", Content: "订单 1001"}})
	fmt.Println(string(mustJSON(replies[0].Body)))
	// Output: {"msgtype":"text","text":{"content":"订单 1001: 已发货"},"touser":"zhangsan"}
}

// Run blocks until ctx is done; cmd/wxhub or your own main calls it.
func ExampleRun() {
	run := func(ctx context.Context, b *bus.Bus, h connectors.Handler) error {
		return connectors.Run(ctx, b, connectors.Options{Name: "erp", Concurrency: 8}, h)
	}
	_ = run
}

// A connector that sends a file it has (a report, a payslip PDF) stores it in
// the hub's media store and replies with a reference; the sender uploads it to
// WeCom and reuses the media id while WeCom keeps it.
func ExampleFileObject() {
	var b *bus.Bus // the connector's bus connection (connectors.Deps.Bus)
	report := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		ref, err := connectors.PutMedia(ctx, b, "销售周报-第48周.xlsx", strings.NewReader("..."))
		if err != nil {
			return nil, err // retried
		}
		return []connectors.Reply{connectors.FileObject(ev.Data.User, ref)}, nil
	})
	_ = report
}

// A connector that receives an image (a photo of a broken printer) reads its
// content through the hub; a chart it drew goes back as an image.
func ExampleOpenMedia() {
	var b *bus.Bus // the connector's bus connection (connectors.Deps.Bus)
	tickets := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		if ev.Data.MsgType != "image" {
			return nil, nil
		}
		photo, ref, err := connectors.OpenMedia(ctx, b, ev)
		if err != nil {
			return nil, err // retried
		}
		defer photo.Close()
		_ = ref.Size // attach photo to the ticket in the legacy system here
		chart, err := connectors.PutMedia(ctx, b, "queue.png", strings.NewReader("\x89PNG\r\n\x1a\n..."))
		if err != nil {
			return nil, err
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "已收到照片，工单已创建"), connectors.ImageObject(ev.Data.User, chart)}, nil
	})
	replies, _ := tickets.Handle(context.Background(), &schemas.Event{Data: schemas.EventData{MsgType: "text"}})
	fmt.Println(len(replies))
	// Output: 0
}
