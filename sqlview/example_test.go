package sqlview_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/sqlview"
)

// Task is a row of the tasks table, as sqlc would generate it: its fields
// are scanned by column name (ListID is list_id).
type Task struct {
	ID     int64
	Text   string
	Done   bool
	ListID int64
	Owner  string
}

// taskJSON is what clients see of a task.
type taskJSON struct {
	ID   int64  `json:"id"`
	Text string `json:"text"`
	Done bool   `json:"done"`
}

// A view over plain SQL, served to subscribers by a live.Router and to
// REST clients by a handler of the application's own that reads through
// the same view, so the two cannot disagree.
func ExampleView() {
	dir, _ := os.MkdirTemp("", "sqlview-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", filepath.Join(dir, "todo.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	db.ExecContext(ctx, `CREATE TABLE tasks (id INTEGER PRIMARY KEY, text TEXT NOT NULL,
		done BOOLEAN NOT NULL DEFAULT FALSE, list_id INTEGER NOT NULL, owner TEXT NOT NULL)`)

	// The view: the table, its key and group columns, the condition that
	// narrows it to what a request may see, and what a client sees of a row.
	tasks := &sqlview.View[Task]{
		Label:       "todolist.Task",
		DB:          sqlview.SQL(db, sqlview.SQLite),
		Table:       "tasks",
		GroupFields: []string{"list_id"},
		QueryParams: []string{"search"},
		Query: func(_ context.Context, req *live.Request, f *sqlview.Filter) error {
			f.Where("tasks.owner = ?", req.UserID)
			if s := req.Query.Get("search"); s != "" {
				f.Where("tasks.text LIKE ?", "%"+s+"%")
			}
			return nil
		},
		Serialize: func(_ context.Context, _ *live.Request, t *Task) (any, error) {
			return taskJSON{ID: t.ID, Text: t.Text, Done: t.Done}, nil
		},
	}

	// Subscriptions, and the capture of every committed write to tasks.
	layer := live.NewMemoryLayer()
	router := live.NewRouter(live.Config{Layer: layer, Authenticate: byHeader, Logger: slog.New(slog.DiscardHandler)})
	router.Register(tasks)
	defer router.Close()
	if err := sqlview.InstallCapture(ctx, db, capture.SQLite, tasks); err != nil {
		log.Fatal(err)
	}
	reader, err := capture.NewReader(db, capture.SQLite, capture.Config{Publisher: layer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go reader.Run(rctx)

	// The application's REST handler reads through the view: its queryset,
	// its permissions and its serializer.
	mux := http.NewServeMux()
	mux.Handle("/ws/subscribe/", router)
	mux.HandleFunc("GET /api/tasks/{id}/", func(w http.ResponseWriter, r *http.Request) {
		id, _ := byHeader(r)
		req := tasks.Request(r, live.ActionRetrieve, id, nil)
		t, err := tasks.Get(r.Context(), req, r.PathValue("id"))
		var body []byte
		if err == nil {
			body, err = tasks.Encode(r.Context(), req, t)
		}
		if lerr := (*live.Error)(nil); errors.As(err, &lerr) {
			http.Error(w, lerr.Message, lerr.Code)
			return
		} else if err != nil {
			http.Error(w, "A server error occurred.", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	web := httptest.NewServer(mux)
	defer web.Close()

	// Alice subscribes to list 14; tasks are written with plain SQL.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(web.URL, "http")+"/ws/subscribe/",
		&websocket.DialOptions{HTTPHeader: http.Header{"X-User": {"alice"}}})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte(`{"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": "014", "ack": true}`))
	read := func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, msg, err := ws.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		var f struct {
			Type, Action string
			Instance     json.RawMessage
		}
		json.Unmarshal(msg, &f)
		fmt.Println(strings.TrimSpace(f.Type + " " + f.Action + " " + string(f.Instance)))
	}
	read() // subscribed
	db.ExecContext(ctx, `INSERT INTO tasks (id, text, list_id, owner) VALUES (1, 'bob''s', 14, 'bob'), (2, 'buy milk', 14, 'alice')`)
	reader.Nudge()
	read() // only alice's task
	req, _ := http.NewRequest("GET", web.URL+"/api/tasks/2/", nil)
	req.Header.Set("X-User", "alice")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(res.StatusCode, string(body)) // the bytes of the broadcast
	// Output:
	// subscribed
	// broadcast CREATED {"id":2,"text":"buy milk","done":false}
	// 200 {"id":2,"text":"buy milk","done":false}
}

// byHeader is the example's authentication: the user the X-User header
// names.
func byHeader(r *http.Request) (live.Identity, error) {
	if u := r.Header.Get("X-User"); u != "" {
		return live.Identity{User: u, ID: u}, nil
	}
	return live.Identity{}, nil
}
