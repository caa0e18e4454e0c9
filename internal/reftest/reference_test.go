package reftest

import (
	"context"
	"fmt"
	"testing"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

func TestSingleInstanceUpdate(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		todo := a.makeTodo(list, "buy milk")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1337, "model": "test_app.Todo", "value": todo.ID})
		todo.Done = true
		a.save(todo)
		receive(t, c, 1337, "UPDATED", todoJSON(todo))
		c.ReceiveNothing()
	})
}

func TestUnsubscribeThenSilence(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		todo := a.makeTodo(list, "one")
		receive(t, c, 1, "CREATED", todoJSON(todo))
		unsubscribe(t, c, 1)
		a.makeTodo(list, "two")
		c.ReceiveNothing()
	})
}

func TestGroupCreateUpdateDelete(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list, other := a.makeList("groceries"), a.makeList("chores")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1338, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		todo := a.makeTodo(list, "test")
		receive(t, c, 1338, "CREATED", todoJSON(todo))
		a.makeTodo(other, "not in the group")
		todo.Done = true
		a.save(todo)
		receive(t, c, 1338, "UPDATED", todoJSON(todo))
		if err := a.db.Delete(todo).Error; err != nil {
			t.Fatal(err)
		}
		receive(t, c, 1338, "DELETED", map[string]any{"id": todo.ID})
		c.ReceiveNothing()
	})
}

func TestStackedSubscriptions(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		group := map[string]any{"model": "test_app.Todo", "group_by": "list_id", "value": list.ID}
		subscribe(t, c, with(group, "request_id", 1))
		subscribe(t, c, with(group, "request_id", 2))
		todo := a.makeTodo(list, "test")
		got := map[string]bool{}
		for range 2 {
			m := c.Receive()
			if m["action"] != "CREATED" {
				t.Fatalf("got %v", m)
			}
			got[fmt.Sprint(m["request_id"])] = true
		}
		if !got["1"] || !got["2"] {
			t.Fatalf("CREATED for %v, want one for each subscription", got)
		}
		c.ReceiveNothing()

		unsubscribe(t, c, 1)
		todo.Done = true
		a.save(todo)
		receive(t, c, 2, "UPDATED", todoJSON(todo))
		c.ReceiveNothing()

		unsubscribe(t, c, 2)
		todo.Text = "changed"
		a.save(todo)
		c.ReceiveNothing()
	})
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestAnonymousRefused(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.Permit = func(_ context.Context, req *live.Request) error {
			if req.Anonymous() {
				return live.ErrForbidden
			}
			return nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		anon, auth := connect(t, rt, ""), connect(t, rt, "alice")
		sub := map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID}
		anon.Send(sub)
		if m := anon.Receive(); m["type"] != "error" || m["code"] != 403.0 || m["request_id"] != 1.0 {
			t.Fatalf("anonymous subscribe: got %v, want error 403", m)
		}
		subscribe(t, auth, sub)
		todo := a.makeTodo(list, "test")
		receive(t, auth, 1, "CREATED", todoJSON(todo))
		anon.ReceiveNothing()
	})
}

func TestSerializerPerUser(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.Serialize = func(_ context.Context, req *live.Request, t *Todo) (any, error) {
			out := todoJSON(t)
			if !req.Anonymous() {
				out["another_field"] = true
			}
			return out, nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		anon, auth := connect(t, rt, ""), connect(t, rt, "alice")
		for _, c := range []*livetest.Communicator{anon, auth} {
			subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		}
		todo := a.makeTodo(list, "test")
		receive(t, anon, 1, "CREATED", todoJSON(todo))
		receive(t, auth, 1, "CREATED", with(todoJSON(todo), "another_field", true))
		// Each connection received exactly one broadcast.
		anon.ReceiveNothing()
		auth.ReceiveNothing()
	})
}

// A permission and a serializer that read the view keyword arguments.
func TestViewKwargs(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.Args = []string{"password", "message"} // what the view reads: others are dropped
		view.Permit = func(_ context.Context, req *live.Request) error {
			if req.Args["password"] != "opensesame" {
				return live.ErrForbidden
			}
			return nil
		}
		view.Serialize = func(_ context.Context, req *live.Request, t *Todo) (any, error) {
			return with(todoJSON(t), "message", req.Args["message"]), nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		c.Send(map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID,
			"arguments": map[string]any{"password": "wrong"}})
		if m := c.Receive(); m["code"] != 403.0 {
			t.Fatalf("wrong password: got %v, want 403", m)
		}
		subscribe(t, c, map[string]any{"request_id": 2, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID,
			"arguments": map[string]any{"password": "opensesame", "message": "hello"}})
		todo := a.makeTodo(list, "test")
		receive(t, c, 2, "CREATED", with(todoJSON(todo), "message", "hello"))
		c.ReceiveNothing()
	})
}

// A permission and a filter that read the query parameters: as the search
// stops matching, CREATED, UPDATED, then DELETED; nothing for to-dos that
// never match.
func TestQueryParams(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.QueryParams = []string{"key", "search"} // what the view reads: others are dropped
		view.Permit = func(_ context.Context, req *live.Request) error {
			if req.Query.Get("key") != "letmein" {
				return live.ErrForbidden
			}
			return nil
		}
		view.Query = func(_ context.Context, db *queryset, req *live.Request) (*queryset, error) {
			if s := req.Query.Get("search"); s != "" {
				db = db.Where("LOWER(todos.text) LIKE ?", "%"+s+"%")
			}
			return db, nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		c.Send(map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID,
			"query_params": map[string]any{"search": "milk"}})
		if m := c.Receive(); m["code"] != 403.0 {
			t.Fatalf("without the key: got %v, want 403", m)
		}
		subscribe(t, c, map[string]any{"request_id": 2, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID,
			"query_params": map[string]any{"search": "milk", "key": "letmein"}})
		a.makeTodo(list, "bread")
		todo := a.makeTodo(list, "buy milk")
		receive(t, c, 2, "CREATED", todoJSON(todo))
		todo.Done = true
		a.save(todo)
		receive(t, c, 2, "UPDATED", todoJSON(todo))
		todo.Text = "buy water"
		a.save(todo)
		receive(t, c, 2, "DELETED", map[string]any{"id": todo.ID})
		a.makeTodo(list, "eggs")
		c.ReceiveNothing()
	})
}

// A queryset filter: to-dos enter and leave the scope as their text
// becomes and stops being "special"; DELETED is sent once.
func TestQuerysetFilter(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.Query = func(_ context.Context, db *queryset, _ *live.Request) (*queryset, error) {
			return db.Where("todos.text = ?", "special"), nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		todo := a.makeTodo(list, "ordinary")
		c.ReceiveNothing()
		todo.Text = "special"
		a.save(todo)
		receive(t, c, 1, "CREATED", todoJSON(todo))
		todo.Done = true
		a.save(todo)
		receive(t, c, 1, "UPDATED", todoJSON(todo))
		todo.Text = "ordinary again"
		a.save(todo)
		receive(t, c, 1, "DELETED", map[string]any{"id": todo.ID})
		todo.Done = false
		a.save(todo)
		if err := a.db.Delete(todo).Error; err != nil {
			t.Fatal(err)
		}
		c.ReceiveNothing()
	})
}

// A computed field added by the view's query appears in the broadcast.
func TestAnnotatedField(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.Query = func(_ context.Context, db *queryset, _ *live.Request) (*queryset, error) {
			return db.Select("todos.*, UPPER(todos.text) AS loud"), nil
		}
		view.Serialize = func(_ context.Context, _ *live.Request, t *Todo) (any, error) {
			return with(todoJSON(t), "loud", t.Loud), nil
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		todo := a.makeTodo(list, "buy milk")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "value": todo.ID})
		todo.Text = "buy oat milk"
		a.save(todo)
		receive(t, c, 1, "UPDATED", with(todoJSON(todo), "loud", "BUY OAT MILK"))
	})
}

// A view whose lookup field is not the pk: lists looked up by name.
func TestLookupByNonPK(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := &view[List]{Label: "test_app.List", LookupField: "name"}
		rt := a.router(view)
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		c.Send(map[string]any{"type": "subscribe", "id": 1, "model": "test_app.List", "action": "retrieve", "lookup_by": "groceries", "ack": true})
		if m := c.Receive(); m["type"] != "subscribed" {
			t.Fatalf("got %v", m)
		}
		c.Send(map[string]any{"type": "subscribe", "id": 2, "model": "test_app.List", "action": "retrieve", "lookup_by": "chores"})
		if m := c.Receive(); m["code"] != 404.0 || m["id"] != 2.0 {
			t.Fatalf("unknown name: got %v, want 404", m)
		}
		if err := a.db.Model(list).Update("archived", true).Error; err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint(map[string]any{"archived": true, "id": float64(list.ID), "name": "groceries"})
		if m := c.Receive(); m["id"] != 1.0 || m["action"] != "UPDATED" || fmt.Sprint(m["instance"]) != want {
			t.Fatalf("got %v, want UPDATED %v", m, want)
		}
		// The subscription is to the list named groceries: renamed, it
		// leaves the scope, and DELETED names it by id and lookup field.
		if err := a.db.Model(list).Update("name", "food").Error; err != nil {
			t.Fatal(err)
		}
		want = fmt.Sprint(map[string]any{"id": float64(list.ID), "name": "groceries"})
		if m := c.Receive(); m["action"] != "DELETED" || fmt.Sprint(m["instance"]) != want {
			t.Fatalf("got %v, want DELETED %v", m, want)
		}
		c.ReceiveNothing()
	})
}

// A delete made in the database, not through GORM, is broadcast.
func TestDatabaseDelete(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		todo := a.makeTodo(list, "test")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "value": todo.ID})
		if _, err := a.sqlDB.Exec(fmt.Sprintf("DELETE FROM todos WHERE id = %d", todo.ID)); err != nil {
			t.Fatal(err)
		}
		receive(t, c, 1, "DELETED", map[string]any{"id": todo.ID})
	})
}

// Two routers side by side, each with its own view of the same model.
func TestTwoRouters(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		short := a.todoView()
		short.Serialize = func(_ context.Context, _ *live.Request, t *Todo) (any, error) { return map[string]any{"id": t.ID}, nil }
		rtFull, rtShort := a.router(a.todoView()), a.router(short)
		list := a.makeList("groceries")
		full, brief := connect(t, rtFull, ""), connect(t, rtShort, "")
		for _, c := range []*livetest.Communicator{full, brief} {
			subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		}
		todo := a.makeTodo(list, "test")
		receive(t, full, 1, "CREATED", todoJSON(todo))
		receive(t, brief, 1, "CREATED", map[string]any{"id": todo.ID})
		full.ReceiveNothing()
		brief.ReceiveNothing()
	})
}

// Bad input through a real view: answered with its code, connection kept.
func TestBadValue(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		c.Send(map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": "fourteen"})
		if m := c.Receive(); m["code"] != 400.0 || m["request_id"] != 1.0 {
			t.Fatalf("got %v, want 400", m)
		}
		c.Send(map[string]any{"request_id": 2, "model": "test_app.Todo", "value": 999999})
		if m := c.Receive(); m["code"] != 404.0 {
			t.Fatalf("got %v, want 404", m)
		}
		subscribe(t, c, map[string]any{"request_id": 3, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		todo := a.makeTodo(list, "still works")
		receive(t, c, 3, "CREATED", todoJSON(todo))
	})
}
