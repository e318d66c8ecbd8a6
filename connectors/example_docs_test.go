package connectors_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

var errERPDown = errors.New("ERP down")

// Tell the user once, on the first failed attempt, then keep retrying
// (docs/connectors.md quotes this example).
func ExampleDeliveryFrom() {
	h := connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		err := errERPDown                    // your legacy call failed
		d, _ := connectors.DeliveryFrom(ctx) // Attempt, MaxDeliver, First(), Last()
		if errors.Is(err, errERPDown) && d.First() {
			return nil, connectors.Retry(err, connectors.Text(ev.Data.User, "ERP 暂时不可用，恢复后自动回复您"))
		}
		return nil, err
	})
	_, err := h.Handle(context.Background(), &schemas.Event{Data: schemas.EventData{User: "zhangsan"}})
	fmt.Println(errors.Is(err, errERPDown))
	// Output: true
}
