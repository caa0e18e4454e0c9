package todoapp

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strconv"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgcapture"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/sqlview"
)

// The SQL mode (-views sql): the same lists and tasks, served through
// sqlview views over database/sql, with REST handlers of the app's own
// (sqlrest.go) that read through those views and write with plain SQL,
// as a team without an ORM writes them. The rules are the GORM mode's
// (app.go): the same conditions, permissions and validation.

// listRow is a row of lists, as sqlc would generate it: scanned by column
// name, ListID as list_id.
type listRow struct {
	ID      int64
	Name    string
	Public  bool
	OwnerID int64
}

// taskRow is a row of tasks with who may see its list, as the task view
// selects it.
type taskRow struct {
	ID         int64
	Text       string
	Done       bool
	ListID     int64
	ListPublic bool
	ListOwner  int64
}

// What clients see of a list and a task: the GORM models' JSON.
type (
	listJSON struct {
		ID     int64  `json:"id"`
		Name   string `json:"name"`
		Public bool   `json:"public"`
		Owner  int64  `json:"owner"`
	}
	taskJSON struct {
		ID   int64  `json:"id"`
		Text string `json:"text"`
		Done bool   `json:"done"`
		List int64  `json:"list"`
	}
)

// sqlViews defines todolist.List and todolist.Task as sqlview views over
// q.
func sqlViews(q sqlview.Querier) (*sqlview.View[listRow], *sqlview.View[taskRow]) {
	lists := &sqlview.View[listRow]{
		Label: "todolist.List",
		DB:    q,
		Table: "lists",
		Query: func(_ context.Context, req *live.Request, f *sqlview.Filter) error {
			c := listsVisible(req)
			f.Where(c.sql, c.args...)
			return nil
		},
		Permit: permitList,
		PermitObject: func(_ context.Context, req *live.Request, l *listRow) error {
			return permitListObject(req, uint(l.OwnerID))
		},
		Serialize: func(_ context.Context, _ *live.Request, l *listRow) (any, error) {
			return listJSON{ID: l.ID, Name: l.Name, Public: l.Public, Owner: l.OwnerID}, nil
		},
	}
	tasks := &sqlview.View[taskRow]{
		Label:        "todolist.Task",
		DB:           q,
		Table:        "tasks",
		From:         "tasks JOIN lists ON lists.id = tasks.list_id",
		Select:       "tasks.id, tasks.text, tasks.done, tasks.list_id, lists.public AS list_public, lists.owner_id AS list_owner",
		GroupFields:  []string{"list_id"},
		QueryParams:  []string{"list", "done", "search"},
		ListAll:      true,
		Dependencies: []live.Dependency{{Model: "todolist.List", Field: "list_id"}},
		Query: func(_ context.Context, req *live.Request, f *sqlview.Filter) error {
			conds, err := taskFilters(req)
			for _, c := range conds {
				f.Where(c.sql, c.args...)
			}
			return err
		},
		// As in the GORM mode: the query reads nothing of the user, so
		// everyone watching a list shares one query per change.
		QueryVary: func(*live.Request) string { return "" },
		PermitObject: func(_ context.Context, req *live.Request, t *taskRow) error {
			return permitTask(req, t.ListPublic, uint(t.ListOwner))
		},
		Serialize: func(_ context.Context, _ *live.Request, t *taskRow) (any, error) {
			return taskJSON{ID: t.ID, Text: t.Text, Done: t.Done, List: t.ListID}, nil
		},
	}
	return lists, tasks
}

// startSQL serves the lists and tasks in the SQL mode: the views, their
// REST handlers, a router, and the capture of their tables with its
// reader, which stop stops after the router.
func (a *App) startSQL(ctx context.Context, lcfg live.Config) error {
	d := sqlview.SQLite
	if a.dialect == pgcapture.Dialect {
		d = sqlview.Postgres
	}
	lists, tasks := sqlViews(sqlview.SQL(a.sqlDB, d))
	var err error
	if lcfg.History, err = capture.NewHistory(a.sqlDB, a.dialect); err != nil {
		return err
	}
	router := live.NewRouter(lcfg)
	router.Register(lists, tasks)
	if err := sqlview.InstallCapture(ctx, a.sqlDB, a.dialect, lists, tasks); err != nil {
		return err
	}
	reader, err := capture.NewReader(a.sqlDB, a.dialect, capture.Config{Publisher: router.Layer(), Logger: a.log})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := reader.Run(rctx); err != nil {
			a.log.Error("todolist: outbox reader stopped", "err", err)
		}
	}()
	api := &sqlAPI{app: a, d: d, lists: lists, tasks: tasks, reader: reader, authenticate: lcfg.Authenticate}
	mux := http.NewServeMux()
	mux.Handle("/ws/subscribe/", router)
	mux.Handle("/api/lists/", http.StripPrefix("/api/lists", api.handler(listResource(api))))
	mux.Handle("/api/tasks/", http.StripPrefix("/api/tasks", api.handler(taskResource(api))))
	a.api, a.router, a.reader = mux, router, reader
	a.stop = func(ctx context.Context) error {
		err := router.Shutdown(ctx)
		cancel()
		<-done
		return err
	}
	return nil
}

// listResource is how the REST handlers read, decode, check and write
// lists.
func listResource(api *sqlAPI) resource {
	res := resourceOf(api.lists, "lists", func(r *listRow) int64 { return r.ID })
	res.decode = func(ctx context.Context, req *live.Request, body []byte, stored any) (write, error) {
		var l List
		if r, ok := stored.(*listRow); ok {
			l = List{ID: uint(r.ID), Name: r.Name, Public: r.Public, OwnerID: uint(r.OwnerID)}
		}
		if err := decodeList(ctx, req, body, &l); err != nil {
			return write{}, err
		}
		if err := validateList(req, &l); err != nil {
			return write{}, err
		}
		return write{table: "lists", columns: []string{"name", "public", "owner_id"}, values: []any{l.Name, l.Public, int64(l.OwnerID)}}, nil
	}
	res.columns = func(row any) []any {
		r := row.(*listRow)
		return []any{r.Name, r.Public, r.OwnerID}
	}
	return res
}

// taskResource is how the REST handlers read, decode, check and write
// tasks.
func taskResource(api *sqlAPI) resource {
	res := resourceOf(api.tasks, "tasks", func(r *taskRow) int64 { return r.ID })
	res.decode = func(ctx context.Context, req *live.Request, body []byte, stored any) (write, error) {
		var t Task
		if r, ok := stored.(*taskRow); ok {
			t = Task{ID: uint(r.ID), Text: r.Text, Done: r.Done, ListID: uint(r.ListID)}
		}
		if err := decodeTask(ctx, req, body, &t); err != nil {
			return write{}, err
		}
		// The task's list must be one the user sees: the lists view's
		// queryset says which, as it does for subscribers.
		visible, err := api.lists.Find(ctx, req, strconv.FormatUint(uint64(t.ListID), 10))
		if err != nil {
			return write{}, err
		}
		if err := validateTask(&t, len(visible) > 0); err != nil {
			return write{}, err
		}
		return write{table: "tasks", columns: []string{"text", "done", "list_id"}, values: []any{t.Text, t.Done, int64(t.ListID)}}, nil
	}
	res.columns = func(row any) []any {
		r := row.(*taskRow)
		return []any{r.Text, r.Done, r.ListID}
	}
	return res
}

// resourceOf is what every resource reads through its view v, whose
// rows are *R with the primary key id: the requests, the page, the
// instance and its JSON are the view's, as subscribers get them.
func resourceOf[R any](v *sqlview.View[R], table string, id func(*R) int64) resource {
	return resource{
		label: v.Label,
		table: table,
		request: func(r *http.Request, action live.Action, who live.Identity) *live.Request {
			return v.Request(r, action, who, nil)
		},
		allow: v.Allow,
		id:    func(row any) int64 { return id(row.(*R)) },
		page: func(ctx context.Context, req *live.Request, offset, limit int) ([][]byte, int, error) {
			rows, n, err := v.Page(ctx, req, offset, limit)
			return encodeAll(ctx, v, req, rows, n, err)
		},
		get: func(ctx context.Context, req *live.Request, lookup string) (any, error) {
			return v.Get(ctx, req, lookup)
		},
		encode: func(ctx context.Context, req *live.Request, row any) ([]byte, error) {
			return v.Encode(ctx, req, row.(*R))
		},
		reread: func(ctx context.Context, req *live.Request, id int64) (any, error) {
			return reread(ctx, v, req, id)
		},
	}
}

// encodeAll encodes rows as req sees them.
func encodeAll[R any](ctx context.Context, v *sqlview.View[R], req *live.Request, rows []R, n int, err error) ([][]byte, int, error) {
	if err != nil {
		return nil, 0, err
	}
	out := make([][]byte, len(rows))
	for i := range rows {
		if out[i], err = v.Encode(ctx, req, &rows[i]); err != nil {
			return nil, 0, err
		}
	}
	return out, n, nil
}

// reread reads the row id back through the view's queryset, with what it
// computes; nil when the write took it out of the queryset.
func reread[R any](ctx context.Context, v *sqlview.View[R], req *live.Request, id int64) (any, error) {
	rows, err := v.Find(ctx, req, strconv.FormatInt(id, 10))
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// sqlAPI is the SQL mode's REST API.
type sqlAPI struct {
	app    *App
	d      sqlview.Dialect
	lists  *sqlview.View[listRow]
	tasks  *sqlview.View[taskRow]
	reader *capture.Reader
	// authenticate is the router's Authenticate: a user is the same user
	// on both sides.
	authenticate func(*http.Request) (live.Identity, error)
}

// inTx runs fn in a transaction, which the views' reads within fn share
// (sqlview.WithTx).
func (api *sqlAPI) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := api.app.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlview.WithTx(ctx, sqlview.SQL(tx, api.d)), tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
