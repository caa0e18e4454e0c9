package live_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/restlive/restlive/live"
)

// todoTable is a small in-memory table of to-dos whose writes publish
// changes to a layer the way a capture would: the hub's tests need a data
// source whose queries they can count, without a database.
type todoTable struct {
	layer live.Publisher

	mu     sync.Mutex
	rows   map[int]todo
	nextID int
	hidden map[int]bool // lists whose to-dos no one sees

	fetches atomic.Int64 // Fetch calls, the hub's queries per change
}

type todo struct {
	ID     int    `json:"id"`
	Text   string `json:"text"`
	Done   bool   `json:"done"`
	ListID int    `json:"list_id"`
}

func newTodoTable(layer live.Publisher) *todoTable {
	return &todoTable{layer: layer, rows: make(map[int]todo), nextID: 1, hidden: make(map[int]bool)}
}

// hide hides or shows a list's to-dos: a change of an app.List row.
func (t *todoTable) hide(listID int, hidden bool) {
	t.mu.Lock()
	t.hidden[listID] = hidden
	t.mu.Unlock()
	t.publish(live.Change{Model: "app.List", PK: strconv.Itoa(listID), Op: live.OpUpdate})
}

func (t *todoTable) publish(c live.Change) {
	if err := t.layer.Publish(context.Background(), []live.Change{c}); err != nil {
		panic(err)
	}
}

func groupValues(r todo) map[string]string {
	return map[string]string{"list_id": strconv.Itoa(r.ListID)}
}

func (t *todoTable) create(text string, listID int) todo {
	t.mu.Lock()
	r := todo{ID: t.nextID, Text: text, ListID: listID}
	t.nextID++
	t.rows[r.ID] = r
	t.mu.Unlock()
	t.publish(live.Change{Model: "app.Todo", PK: strconv.Itoa(r.ID), Op: live.OpInsert, New: groupValues(r)})
	return r
}

func (t *todoTable) update(r todo) {
	t.mu.Lock()
	old := t.rows[r.ID]
	t.rows[r.ID] = r
	t.mu.Unlock()
	t.publish(live.Change{Model: "app.Todo", PK: strconv.Itoa(r.ID), Op: live.OpUpdate, Old: groupValues(old), New: groupValues(r)})
}

func (t *todoTable) delete(id int) {
	t.mu.Lock()
	old := t.rows[id]
	delete(t.rows, id)
	t.mu.Unlock()
	t.publish(live.Change{Model: "app.Todo", PK: strconv.Itoa(id), Op: live.OpDelete, Old: groupValues(old)})
}

// todoView serves todoTable. Anonymous users see to-dos of even lists
// only; the query parameter "search" filters by text; the view argument
// "done" filters by done; logged-in users also see "owner_only" in the
// output.
type todoView struct {
	table *todoTable
	// refuse makes Subscribe answer 403.
	refuse func(req *live.Request) bool
	// listAll allows subscriptions to every to-do.
	listAll bool
	// shareScopes makes the scopes of all users one (Key ""), and shows
	// whose request serialized an instance, as "seen_by".
	shareScopes bool
}

// Spec says that a to-do is visible only when its list is, and what of a
// request the view reads.
func (v *todoView) Spec() live.Spec {
	return live.Spec{
		Model: "app.Todo", GroupBy: []string{"list_id"}, ListAll: v.listAll,
		Args: []string{"done"}, QueryParams: []string{"search"},
		Dependencies: []live.Dependency{{Model: "app.List", Field: "list_id"}},
	}
}

// Parse knows that the pk and list_id are integers.
func (v *todoView) Parse(field, value string) (live.Value, error) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return live.Value{}, fmt.Errorf("not an integer")
	}
	s := strconv.FormatInt(n, 10)
	return live.Value{Canonical: s, JSON: json.RawMessage(s)}, nil
}

func (v *todoView) Subscribe(_ context.Context, req *live.Request) (live.Scope, error) {
	if v.refuse != nil && v.refuse(req) {
		return nil, live.ErrForbidden
	}
	if d, ok := req.Args["done"]; ok && d != "true" && d != "false" {
		return nil, live.Errorf(400, "done must be true or false")
	}
	return &todoScope{view: v, req: req}, nil
}

type todoScope struct {
	view *todoView
	req  *live.Request
}

func (s *todoScope) Key() string {
	if s.view.shareScopes {
		return ""
	}
	return s.req.UserID
}

func (s *todoScope) matches(r todo) bool {
	req := s.req
	if req.Anonymous() && r.ListID%2 != 0 || s.view.table.hidden[r.ListID] {
		return false
	}
	switch req.GroupBy {
	case live.PK:
		if strconv.Itoa(r.ID) != req.Value {
			return false
		}
	case "list_id":
		if strconv.Itoa(r.ListID) != req.Value {
			return false
		}
	}
	if q := req.Query.Get("search"); q != "" && !strings.Contains(r.Text, q) {
		return false
	}
	if d, ok := req.Args["done"]; ok && strconv.FormatBool(r.Done) != d {
		return false
	}
	return true
}

func (s *todoScope) instance(r todo) live.Instance {
	out := map[string]any{"id": r.ID, "text": r.Text, "done": r.Done, "list_id": r.ListID}
	if !s.req.Anonymous() {
		out["owner_only"] = "secret"
	}
	if s.view.shareScopes {
		out["seen_by"] = s.req.UserID
	}
	data, _ := json.Marshal(out)
	return live.Instance{PK: strconv.Itoa(r.ID), ID: json.RawMessage(fmt.Sprintf(`{"id":%d}`, r.ID)), Data: data}
}

func (s *todoScope) Members(context.Context) ([]live.Instance, error) {
	t := s.view.table
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []live.Instance
	for _, r := range t.rows {
		if s.matches(r) {
			out = append(out, s.instance(r))
		}
	}
	return out, nil
}

func (s *todoScope) Fetch(_ context.Context, pks []string) ([]live.Instance, error) {
	t := s.view.table
	t.fetches.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []live.Instance
	for _, pk := range pks {
		id, _ := strconv.Atoi(pk)
		if r, ok := t.rows[id]; ok && s.matches(r) {
			out = append(out, s.instance(r))
		}
	}
	return out, nil
}
