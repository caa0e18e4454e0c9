package rest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// The test app: the to-do rules of issue 3. A public list is visible to
// everyone, a private one to its owner; only logged-in users create lists
// and only the owner changes them; a task is visible, and writable, exactly
// when its list is.

type user struct {
	ID   uint
	Name string
}

type List struct {
	ID      uint   `json:"id"`
	Name    string `json:"name"`
	Public  bool   `json:"public"`
	OwnerID uint   `json:"owner"`
	// TaskCount is computed by the queryset: it shows that answers are
	// read back through it.
	TaskCount int `json:"task_count" gorm:"->;-:migration"`
}

type Task struct {
	ID     uint    `json:"id"`
	Text   string  `json:"text"`
	Done   bool    `json:"done"`
	ListID uint    `json:"list"`
	Note   *string `json:"note"`
}

var users = map[string]*user{
	"alice-token": {ID: 1, Name: "alice"},
	"bob-token":   {ID: 2, Name: "bob"},
}

func authenticate(r *http.Request) (live.Identity, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
	if !ok {
		return live.Identity{}, nil
	}
	if u := users[token]; u != nil {
		return live.Identity{User: u, ID: strconv.FormatUint(uint64(u.ID), 10)}, nil
	}
	return live.Identity{}, live.Errorf(401, "Invalid token.")
}

func userID(req *live.Request) uint {
	if u, ok := req.User.(*user); ok {
		return u.ID
	}
	return 0
}

// visibleLists narrows db to the lists req may see.
func visibleLists(db *gorm.DB, req *live.Request) *gorm.DB {
	if req.Anonymous() {
		return db.Where("lists.public")
	}
	return db.Where("lists.public OR lists.owner_id = ?", userID(req))
}

type app struct {
	db    *gorm.DB
	lists *gormlive.View[List]
	tasks *gormlive.View[Task]
	mux   *http.ServeMux
	srv   *httptest.Server
	logs  *testenv.Logs
}

func openDB(t testing.TB) *gorm.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := gorm.Open(sqlite.Open(path+"?_pragma=foreign_keys(1)&_pragma=synchronous(OFF)&_pragma=journal_mode(WAL)"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

func newApp(t testing.TB) *app {
	t.Helper()
	db := openDB(t)
	if err := db.AutoMigrate(&List{}, &Task{}); err != nil {
		t.Fatal(err)
	}
	a := &app{db: db, logs: &testenv.Logs{}}
	a.lists = &gormlive.View[List]{
		Label: "todolist.List",
		DB:    db,
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			db = db.Select("lists.*, (SELECT COUNT(*) FROM tasks WHERE tasks.list_id = lists.id) AS task_count")
			return visibleLists(db, req), nil
		},
		Permit: func(ctx context.Context, req *live.Request) error {
			if req.Action == "create" && req.Anonymous() {
				return live.ErrForbidden
			}
			return nil
		},
		PermitObject: func(_ context.Context, req *live.Request, l *List) error {
			if req.Action.Read() || l.OwnerID == userID(req) {
				return nil
			}
			return live.ErrForbidden
		},
		Decode: func(_ context.Context, req *live.Request, body []byte, l *List) error {
			var in struct {
				Name   *string `json:"name"`
				Public *bool   `json:"public"`
			}
			if err := gormlive.DecodeJSON(body, &in); err != nil {
				return err
			}
			errs := gormlive.FieldErrors{}
			if in.Name != nil {
				l.Name = *in.Name
			} else if req.Action != "partial_update" {
				errs.Add("name", "This field is required.")
			}
			if in.Public != nil {
				l.Public = *in.Public
			}
			return errs.Err()
		},
		Validate: func(ctx context.Context, req *live.Request, l *List) error {
			if req.Action == "create" {
				l.OwnerID = userID(req)
			}
			if strings.TrimSpace(l.Name) == "" {
				return gormlive.FieldErrors{"name": {"This field may not be blank."}}
			}
			return nil
		},
	}
	a.tasks = &gormlive.View[Task]{
		Label: "todolist.Task",
		DB:    db,
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			lists := visibleLists(db.Session(&gorm.Session{NewDB: true}).Model(&List{}).Select("lists.id"), req)
			db = db.Where("tasks.list_id IN (?)", lists)
			if v := req.Query.Get("list"); v != "" {
				id, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, live.Errorf(400, "list: %q is not a list id", v)
				}
				db = db.Where("tasks.list_id = ?", id)
			}
			if v := req.Query.Get("done"); v != "" {
				done, err := strconv.ParseBool(v)
				if err != nil {
					return nil, live.Errorf(400, "done: %q is neither true nor false", v)
				}
				db = db.Where("tasks.done = ?", done)
			}
			if v := req.Query.Get("search"); v != "" {
				db = db.Where("LOWER(tasks.text) LIKE ?", "%"+strings.ToLower(v)+"%")
			}
			return db, nil
		},
		// The default Decode: the Writable fields of the body.
		Writable:    []string{"text", "done", "list", "note"},
		QueryParams: []string{"list", "done", "search"},
		Validate: func(ctx context.Context, req *live.Request, task *Task) error {
			errs := gormlive.FieldErrors{}
			if strings.TrimSpace(task.Text) == "" {
				errs.Add("text", "This field may not be blank.")
			}
			var n int64
			q := visibleLists(gormlive.DB(ctx, a.db).Model(&List{}).Where("lists.id = ?", task.ListID), req)
			if err := q.Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				errs.Add("list", `Invalid pk "`+strconv.FormatUint(uint64(task.ListID), 10)+`" - object does not exist.`)
			}
			return errs.Err()
		},
	}
	cfg := rest.Config{Authenticate: authenticate, Challenge: "Token", Logger: newLogger(a.logs)}
	a.mux = http.NewServeMux()
	a.mux.Handle("/api/lists/", http.StripPrefix("/api/lists", rest.Handler(a.lists, cfg)))
	a.mux.Handle("/api/tasks/", http.StripPrefix("/api/tasks", rest.Handler(a.tasks, cfg)))
	a.srv = httptest.NewServer(a.mux)
	t.Cleanup(a.srv.Close)
	return a
}

// response is what a request got.
type response struct {
	code   int
	header http.Header
	body   string
}

// do sends a request as the user of token ("" for anonymous); a body is
// sent as application/json.
func (a *app) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	return a.send(t, method, path, token, "application/json", body)
}

func (a *app) send(t *testing.T, method, path, token, contentType, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, a.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{code: res.StatusCode, header: res.Header, body: string(b)}
}

// must sends a request that must answer code, and returns the body.
func (a *app) must(t *testing.T, code int, method, path, token, body string) string {
	t.Helper()
	res := a.do(t, method, path, token, body)
	if res.code != code {
		t.Fatalf("%s %s as %q: got %d %s, want %d", method, path, token, res.code, res.body, code)
	}
	return res.body
}

func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
