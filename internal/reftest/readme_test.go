package reftest

import (
	"testing"

	"github.com/restlive/restlive/live/livetest"
)

// The README's Testing section quotes the body of this test.
func TestReadmeLivetest(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		router := a.router(a.todoView())
		list := a.makeList("groceries")

		c := livetest.Connect(t, router, &livetest.Options{
			Header: livetest.TokenHeader("Token", "alice"),
		})
		c.Send(map[string]any{"request_id": 1, "model": "test_app.Todo",
			"group_by": "list_id", "value": list.ID, "ack": true})
		if m := c.Receive(); m["type"] != "subscribed" {
			t.Fatalf("got %v", m)
		}
		a.db.Create(&Todo{Text: "buy milk", ListID: list.ID})
		if m := c.Receive(); m["action"] != "CREATED" {
			t.Fatalf("got %v", m)
		}
		c.ReceiveNothing()
	})
}
