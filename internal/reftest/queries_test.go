package reftest

import (
	"context"
	"fmt"
	"testing"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// The reference library runs one query per subscriber for every change.
// Here subscribers who share a scope share its query: one update of a
// to-do costs one SELECT whether 1 or 1,000 clients watch its list.
func TestQueriesPerUpdate(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		conns := make([]*livetest.Communicator, 10)
		for i := range conns {
			conns[i] = connect(t, rt, "")
		}
		todo := makeTodoSettled(t, a, conns[0], list, "buy milk")
		subscribers := 0
		for _, n := range []int{1, 100, 1000} {
			for ; subscribers < n; subscribers++ {
				subscribe(t, conns[subscribers%len(conns)], map[string]any{
					"request_id": subscribers, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
			}
			before := a.queries.Load()
			todo.Done = !todo.Done
			a.save(todo)
			for i, c := range conns {
				for range n/len(conns) + btoi(i < n%len(conns)) {
					if m := c.Receive(); m["action"] != "UPDATED" {
						t.Fatalf("got %v", m)
					}
				}
			}
			// a.save itself runs no SELECT; the rest are the hub's.
			queries := a.queries.Load() - before
			t.Logf("%d subscribers: %d SQL queries for one update", n, queries)
			if queries != 1 {
				t.Errorf("%d subscribers: %d queries for one update, want 1", n, queries)
			}
		}
		for _, c := range conns {
			c.ReceiveNothing()
		}
	})
}

// makeTodoSettled creates a to-do and returns once the hub has handled
// its creation, which costs a query of its own: c, subscribed to the list
// meanwhile, receives it. Otherwise the capture may deliver the creation
// after a test starts counting queries.
func makeTodoSettled(t *testing.T, a *app, c *livetest.Communicator, list *List, text string) *Todo {
	t.Helper()
	subscribe(t, c, map[string]any{"request_id": "settle", "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
	todo := a.makeTodo(list, text)
	if m := c.Receive(); m["action"] != "CREATED" {
		t.Fatalf("waiting for the to-do's creation: got %v", m)
	}
	unsubscribe(t, c, "settle")
	return todo
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Users whose scopes differ only in what PermitObject and Serialize read
// share one query per change when the view says its Query does not read
// the user (QueryVary): each still gets only what it may see, in its own
// shape.
func TestQueriesPerUpdateSharedAcrossUsers(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.QueryVary = func(*live.Request) string { return "" }
		view.PermitObject = func(_ context.Context, req *live.Request, _ *Todo) error {
			if req.UserID == "mallory" {
				return live.ErrNotFound
			}
			return nil
		}
		view.Serialize = func(_ context.Context, req *live.Request, t *Todo) (any, error) {
			return with(todoJSON(t), "viewer", req.UserID), nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		const users = 100
		conns := make([]*livetest.Communicator, users)
		var todo *Todo
		for i := range conns {
			conns[i] = connect(t, rt, fmt.Sprintf("user%d", i))
			if i == 0 {
				todo = makeTodoSettled(t, a, conns[0], list, "buy milk")
			}
			subscribe(t, conns[i], map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		}
		mallory := connect(t, rt, "mallory")
		subscribe(t, mallory, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})

		before := a.queries.Load()
		todo.Done = true
		a.save(todo)
		for i, c := range conns {
			receive(t, c, 1, "UPDATED", with(todoJSON(todo), "viewer", fmt.Sprintf("user%d", i)))
		}
		queries := a.queries.Load() - before
		t.Logf("%d users with scopes of their own: %d SQL queries for one update", users+1, queries)
		if queries != 1 {
			t.Errorf("%d queries for one update, want 1", queries)
		}
		mallory.ReceiveNothing()
	})
}
