package rest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// countUpdates counts the UPDATE statements run on tasks from now on, with
// a trigger, as a capture would see them.
func countUpdates(t *testing.T, db *gorm.DB) func() int {
	t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE updates (n INTEGER)`,
		`CREATE TRIGGER tasks_updated AFTER UPDATE ON tasks BEGIN INSERT INTO updates VALUES (1); END`,
	} {
		if err := db.Exec(stmt).Error; err != nil {
			t.Fatal(err)
		}
	}
	return func() int {
		var n int64
		if err := db.Table("updates").Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
}

func TestUpdateWritesWhatChanged(t *testing.T) {
	a := newApp(t)
	list := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"l"}`))
	id := created(t, a.must(t, 201, "POST", "/api/tasks/", alice, `{"text":"t","list":`+list+`,"note":"a"}`))
	updates := countUpdates(t, a.db)

	// A pointer field changed through the pointer is seen as changed.
	got := a.must(t, 200, "PATCH", "/api/tasks/"+id+"/", alice, `{"note":"b"}`)
	if want := `{"id":` + id + `,"text":"t","done":false,"list":` + list + `,"note":"b"}`; got != want {
		t.Fatalf("PATCH note = %s, want %s", got, want)
	}
	if n := updates(); n != 1 {
		t.Fatalf("%d updates after one change, want 1", n)
	}
	// Sending back what was read changes nothing, and writes nothing.
	a.must(t, 200, "PUT", "/api/tasks/"+id+"/", alice, got)
	a.must(t, 200, "PATCH", "/api/tasks/"+id+"/", alice, `{}`)
	if n := updates(); n != 1 {
		t.Fatalf("%d updates after no-op updates, want 1", n)
	}

	// A column changed underneath is not overwritten by a partial update
	// of another one.
	if err := a.db.Exec(`UPDATE tasks SET text = 'changed' WHERE id = ?`, id).Error; err != nil {
		t.Fatal(err)
	}
	got = a.must(t, 200, "PATCH", "/api/tasks/"+id+"/", alice, `{"done":true,"note":null}`)
	if want := `{"id":` + id + `,"text":"changed","done":true,"list":` + list + `,"note":null}`; got != want {
		t.Fatalf("PATCH done = %s, want %s", got, want)
	}
}

func TestPrimaryKeyIsReadOnly(t *testing.T) {
	a := newApp(t)
	list := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"l","public":true}`))
	first := created(t, a.must(t, 201, "POST", "/api/tasks/", alice, `{"text":"one","list":`+list+`}`))
	// A client-chosen id is ignored on create ...
	second := created(t, a.must(t, 201, "POST", "/api/tasks/", alice, `{"id":`+first+`,"text":"two","list":`+list+`}`))
	if second == first {
		t.Fatalf("create took the id %s from the body", first)
	}
	// ... and cannot change on update, nor touch another row.
	got := a.must(t, 200, "PATCH", "/api/tasks/"+second+"/", alice, `{"id":`+first+`,"text":"2"}`)
	if want := `{"id":` + second + `,"text":"2","done":false,"list":` + list + `,"note":null}`; got != want {
		t.Fatalf("PATCH with an id = %s, want %s", got, want)
	}
	if got := a.must(t, 200, "GET", "/api/tasks/"+first+"/", alice, ""); !strings.Contains(got, `"text":"one"`) {
		t.Fatalf("the task whose id was sent changed: %s", got)
	}
}

func TestHeadAndOptions(t *testing.T) {
	a := newApp(t)
	list := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"l","public":true}`))
	get := a.do(t, "GET", "/api/lists/"+list+"/", "", "")
	head := a.do(t, "HEAD", "/api/lists/"+list+"/", "", "")
	if head.code != 200 || head.body != "" || head.header.Get("Content-Length") != get.header.Get("Content-Length") {
		t.Fatalf("HEAD: %d %q length %s, want 200, no body, length %s", head.code, head.body, head.header.Get("Content-Length"), get.header.Get("Content-Length"))
	}
	opts := a.do(t, "OPTIONS", "/api/lists/", "", "")
	if opts.code != 204 || opts.header.Get("Allow") != "GET, HEAD, POST, OPTIONS" {
		t.Fatalf("OPTIONS: %d Allow %q", opts.code, opts.header.Get("Allow"))
	}
}

// TestViewHooks covers what the to-do app does not use: an object
// permission that hides instances, view keyword arguments from the mount
// point, a lookup field, a body limit, and a failing serializer.
func TestViewHooks(t *testing.T) {
	db := openDB(t)
	if err := db.AutoMigrate(&List{}, &Task{}); err != nil {
		t.Fatal(err)
	}
	for _, task := range []Task{{Text: "a", ListID: 1}, {Text: "b", ListID: 1, Done: true}, {Text: "c", ListID: 2}, {Text: "fail", ListID: 1}} {
		if err := db.Create(&task).Error; err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen []*live.Request
	)
	tasks := &gormlive.View[Task]{
		Label:    "todolist.Task",
		DB:       db,
		Args:     []string{"list"},
		Writable: []string{"text"},
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			return db.Where("list_id = ?", req.Args["list"]), nil
		},
		Permit: func(ctx context.Context, req *live.Request) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, req)
			return nil
		},
		// Done tasks are invisible.
		PermitObject: func(_ context.Context, req *live.Request, task *Task) error {
			if task.Done {
				return live.ErrNotFound
			}
			return nil
		},
		LookupField: "text",
		Serialize: func(_ context.Context, req *live.Request, task *Task) (any, error) {
			if task.Text == "fail" {
				return nil, errors.New("cannot serialize")
			}
			return map[string]any{"text": task.Text}, nil
		},
	}
	logs := &testenv.Logs{}
	h := rest.Handler(tasks, rest.Config{
		Args:         func(r *http.Request) map[string]string { return map[string]string{"list": r.PathValue("list")} },
		MaxBodyBytes: 10,
		Logger:       newLogger(logs),
	})
	mux := http.NewServeMux()
	// A nested mount: the prefix to strip holds a wildcard.
	mux.HandleFunc("/lists/{list}/tasks/", func(w http.ResponseWriter, r *http.Request) {
		http.StripPrefix("/lists/"+r.PathValue("list")+"/tasks", h).ServeHTTP(w, r)
	})
	a := &app{srv: httptest.NewServer(mux)}
	t.Cleanup(a.srv.Close)

	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/lists/2/tasks/", 200, `{"count":1,"next":null,"previous":null,"results":[{"text":"c"}]}`},
		{"GET", "/lists/2/tasks/c", 200, `{"text":"c"}`},
		{"GET", "/lists/1/tasks/c/", 404, ""},
		{"GET", "/lists/1/tasks/b/", 404, ""}, // hidden by PermitObject
		{"DELETE", "/lists/1/tasks/b/", 404, ""},
		{"GET", "/lists/1/tasks/fail/", 500, `{"detail":"A server error occurred."}`},
		{"PATCH", "/lists/1/tasks/a/", 413, ""},
		{"GET", "/lists/1/tasks/", 500, `{"detail":"A server error occurred."}`}, // "fail" cannot serialize
	} {
		res := a.do(t, tc.method, tc.path, "", `{"text":"0123456789"}`)
		if res.code != tc.code || (tc.want != "" && res.body != tc.want) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, res.code, res.body, tc.code, tc.want)
		}
	}
	if !strings.Contains(logs.String(), "cannot serialize") {
		t.Errorf("the serializer's error was not logged: %q", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if r := seen[1]; r.Action != "retrieve" || r.Args["list"] != "2" || r.Args["text"] != "c" || !r.Anonymous() {
		t.Errorf("retrieve request: %+v", r)
	}
}
