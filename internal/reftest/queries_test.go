package reftest

import (
	"testing"

	"github.com/restlive/restlive/live/livetest"
)

// The reference library runs one query per subscriber for every change.
// Here subscribers who share a scope share its query: one update of a
// to-do costs one SELECT whether 1 or 1,000 clients watch its list.
func TestQueriesPerUpdate(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		todo := a.makeTodo(list, "buy milk")
		conns := make([]*livetest.Communicator, 10)
		for i := range conns {
			conns[i] = connect(t, rt, "")
		}
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

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
