package reftest

import (
	"context"
	"fmt"
	"testing"

	"gorm.io/gorm"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// What the reference library cannot see, since it hears only its ORM's
// signals: bulk updates, raw SQL, other processes, and transactions.

func TestBulkUpdate(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list, other := a.makeList("groceries"), a.makeList("chores")
		todos := []*Todo{a.makeTodo(list, "a"), a.makeTodo(list, "b"), a.makeTodo(list, "c")}
		a.makeTodo(other, "elsewhere")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})

		// Through GORM, then in raw SQL: one UPDATED per affected row.
		if err := a.db.Model(&Todo{}).Where("list_id = ?", list.ID).Update("done", true).Error; err != nil {
			t.Fatal(err)
		}
		expectUpdated(t, c, todos, true)
		if _, err := a.sqlDB.Exec(fmt.Sprintf("UPDATE todos SET done = false WHERE list_id = %d", list.ID)); err != nil {
			t.Fatal(err)
		}
		expectUpdated(t, c, todos, false)
		c.ReceiveNothing()
	})
}

// expectUpdated receives one UPDATED per to-do, in any order, with done.
func expectUpdated(t *testing.T, c *livetest.Communicator, todos []*Todo, done bool) {
	t.Helper()
	want := map[string]bool{}
	for _, todo := range todos {
		todo.Done = done
		want[fmt.Sprint(jsonValues(todoJSON(todo)))] = true
	}
	for range todos {
		m := c.Receive()
		key := fmt.Sprint(m["instance"])
		if m["action"] != "UPDATED" || !want[key] {
			t.Fatalf("got %v, want UPDATED of one of %v", m, want)
		}
		delete(want, key)
	}
}

func TestWriteByAnotherProcess(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		todo := a.makeTodo(list, "buy milk")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		a.external(fmt.Sprintf("UPDATE todos SET text = 'from outside' WHERE id = %d", todo.ID))
		todo.Text = "from outside"
		receive(t, c, 1, "UPDATED", todoJSON(todo))
	})
}

func TestTransactions(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})

		rollback := fmt.Errorf("roll back")
		err := a.db.Transaction(func(tx *gorm.DB) error {
			tx.Create(&Todo{Text: "never", ListID: list.ID})
			return rollback
		})
		if err != rollback {
			t.Fatalf("transaction: %v", err)
		}
		var made []*Todo
		err = a.db.Transaction(func(tx *gorm.DB) error {
			for _, text := range []string{"one", "two", "three"} {
				todo := &Todo{Text: text, ListID: list.ID}
				if err := tx.Create(todo).Error; err != nil {
					return err
				}
				made = append(made, todo)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, todo := range made { // in commit order
			receive(t, c, 1, "CREATED", todoJSON(todo))
		}
		c.ReceiveNothing()
	})
}

func TestMoveBetweenLists(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		rt := a.router(a.todoView())
		from, to := a.makeList("groceries"), a.makeList("chores")
		todo := a.makeTodo(from, "buy milk")
		old, new := connect(t, rt, ""), connect(t, rt, "")
		subscribe(t, old, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": from.ID})
		subscribe(t, new, map[string]any{"request_id": 2, "model": "test_app.Todo", "group_by": "list_id", "value": to.ID})
		todo.ListID = to.ID
		a.save(todo)
		receive(t, old, 1, "DELETED", map[string]any{"id": todo.ID})
		receive(t, new, 2, "CREATED", todoJSON(todo))
		old.ReceiveNothing()
		new.ReceiveNothing()
	})
}

// A to-do is visible while its list is not archived: archiving the list
// changes no to-do row, yet its to-dos leave their subscribers' scopes.
func TestDependency(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.Query = func(_ context.Context, db *queryset, _ *live.Request) (*queryset, error) {
			return db.Select("todos.*").Joins("JOIN lists ON lists.id = todos.list_id").Where("NOT lists.archived"), nil
		}
		view.Dependencies = []live.Dependency{{Model: "test_app.List", Field: "list_id"}}
		rt := a.router(view)
		list := a.makeList("groceries")
		todo := a.makeTodo(list, "buy milk")
		group, single := connect(t, rt, ""), connect(t, rt, "")
		subscribe(t, group, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
		subscribe(t, single, map[string]any{"request_id": 2, "model": "test_app.Todo", "value": todo.ID})

		if err := a.db.Model(list).Update("archived", true).Error; err != nil {
			t.Fatal(err)
		}
		receive(t, group, 1, "DELETED", map[string]any{"id": todo.ID})
		receive(t, single, 2, "DELETED", map[string]any{"id": todo.ID})
		if err := a.db.Model(list).Update("archived", false).Error; err != nil {
			t.Fatal(err)
		}
		receive(t, group, 1, "CREATED", todoJSON(todo))
		receive(t, single, 2, "CREATED", todoJSON(todo))
		group.ReceiveNothing()
		single.ReceiveNothing()
	})
}

// A boolean group field: SQLite stores it as 0 or 1, and clients send
// true or false.
func TestGroupByBoolean(t *testing.T) {
	databases(t, func(t *testing.T, a *app) {
		view := a.todoView()
		view.GroupFields = []string{"list_id", "done"}
		if err := a.installCapture(view); err != nil {
			t.Fatal(err)
		}
		rt := a.router(view)
		list := a.makeList("groceries")
		c := connect(t, rt, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "done", "value": true})
		todo := a.makeTodo(list, "buy milk")
		todo.Done = true
		a.save(todo)
		receive(t, c, 1, "CREATED", todoJSON(todo))
		todo.Text = "buy oat milk"
		a.save(todo)
		receive(t, c, 1, "UPDATED", todoJSON(todo))
		todo.Done = false
		a.save(todo)
		receive(t, c, 1, "DELETED", map[string]any{"id": todo.ID})
		c.ReceiveNothing()
	})
}
