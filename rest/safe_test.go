package rest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// Post has a field only the server sets: its owner.
type Post struct {
	ID      uint   `json:"id"`
	Text    string `json:"text"`
	OwnerID uint   `json:"owner_id"`
}

// A client cannot write what the view does not list as Writable: the
// fields a body names beyond it are ignored, on create and on update.
func TestUnlistedFieldsAreNotWritten(t *testing.T) {
	db := openDB(t)
	if err := db.AutoMigrate(&Post{}); err != nil {
		t.Fatal(err)
	}
	posts := &gormlive.View[Post]{
		Label: "blog.Post", DB: db, Writable: []string{"text"},
		Validate: func(_ context.Context, req *live.Request, p *Post) error {
			if req.Action == live.ActionCreate {
				p.OwnerID = 1
			}
			return nil
		},
	}
	a := &app{srv: httptest.NewServer(http.StripPrefix("/api/posts", rest.Handler(posts, rest.Config{})))}
	t.Cleanup(a.srv.Close)
	id := created(t, a.must(t, 201, "POST", "/api/posts/", "", `{"text":"hello","owner_id":2,"id":99}`))
	if got, want := a.must(t, 200, "PATCH", "/api/posts/"+id+"/", "", `{"text":"bye","owner_id":2}`), `{"id":`+id+`,"text":"bye","owner_id":1}`; got != want {
		t.Fatalf("PATCH answered %s, want %s", got, want)
	}
	var stored Post
	if err := db.First(&stored, id).Error; err != nil || stored.OwnerID != 1 || stored.ID == 99 {
		t.Fatalf("stored %+v (%v): the body wrote a field that is not Writable", stored, err)
	}
	// A Writable field of the wrong type says which, by its JSON name.
	if got, want := a.must(t, 400, "PATCH", "/api/posts/"+id+"/", "", `{"text":5}`), `{"text":["Must be a string, got number."]}`; got != want {
		t.Fatalf("PATCH with a number: %s, want %s", got, want)
	}
}

// A view that serves writes must say what may be written, or be read-only:
// Handler refuses it at start-up, and a ReadOnly view answers writes 405.
func TestWritesNeedWritableFields(t *testing.T) {
	db := openDB(t)
	if err := db.AutoMigrate(&Post{}); err != nil {
		t.Fatal(err)
	}
	for name, view := range map[string]*gormlive.View[Post]{
		"nothing writable":      {Label: "blog.Post", DB: db},
		"unknown field":         {Label: "blog.Post", DB: db, Writable: []string{"title"}},
		"the primary key":       {Label: "blog.Post", DB: db, Writable: []string{"id"}},
		"the Go name, not JSON": {Label: "blog.Post", DB: db, Writable: []string{"Text"}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "rest: ") {
					t.Fatalf("Handler did not refuse the view: %v", r)
				}
			}()
			rest.Handler(view, rest.Config{})
		})
	}
	posts := &gormlive.View[Post]{Label: "blog.Post", DB: db, ReadOnly: true}
	a := &app{srv: httptest.NewServer(http.StripPrefix("/api/posts", rest.Handler(posts, rest.Config{})))}
	t.Cleanup(a.srv.Close)
	if err := db.Create(&Post{Text: "x"}).Error; err != nil {
		t.Fatal(err)
	}
	a.must(t, 200, "GET", "/api/posts/1/", "", "")
	for _, m := range []string{"POST /api/posts/", "PATCH /api/posts/1/", "PUT /api/posts/1/", "DELETE /api/posts/1/"} {
		method, path, _ := strings.Cut(m, " ")
		res := a.do(t, method, path, "", `{"text":"y"}`)
		if res.code != 405 || res.header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s on a read-only view: %d, Allow %q; want 405, GET, HEAD, OPTIONS", m, res.code, res.header.Get("Allow"))
		}
	}
}

// Lists are paginated as Django REST Framework's LimitOffsetPagination
// does it, counting only what the request sees.
func TestPagination(t *testing.T) {
	a := newApp(t)
	public := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"shared","public":true}`))
	private := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"mine"}`))
	for i := range 7 {
		list := public
		if i%2 == 1 {
			list = private // bob does not see these three
		}
		a.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"t%d","list":%s}`, i, list))
	}
	host := strings.TrimPrefix(a.srv.URL, "http://")
	next := func(q string) string { return `"http://` + host + `/api/tasks/?` + q + `"` }
	for _, tc := range []struct {
		token, query string
		count        int
		next, prev   string
		texts        string
	}{
		{alice, "", 7, "null", "null", "t0,t1,t2,t3,t4,t5,t6"},
		{alice, "?limit=3", 7, next("limit=3&offset=3"), "null", "t0,t1,t2"},
		{alice, "?limit=3&offset=3", 7, next("limit=3&offset=6"), next("limit=3"), "t3,t4,t5"},
		{alice, "?limit=3&offset=6", 7, "null", next("limit=3&offset=3"), "t6"},
		{alice, "?search=t&limit=2&offset=4", 7, next("limit=2&offset=6&search=t"), next("limit=2&offset=2&search=t"), "t4,t5"},
		{bob, "?limit=2", 4, next("limit=2&offset=2"), "null", "t0,t2"},
		{bob, "?limit=2&offset=2", 4, "null", next("limit=2"), "t4,t6"},
		{"", "?limit=abc&offset=-1", 4, "null", "null", "t0,t2,t4,t6"}, // ignored
		{alice, "?offset=100", 7, "null", next("limit=100"), ""},
	} {
		body := a.must(t, 200, "GET", "/api/tasks/"+tc.query, tc.token, "")
		head := fmt.Sprintf(`{"count":%d,"next":%s,"previous":%s,"results":[`, tc.count, tc.next, tc.prev)
		if !strings.HasPrefix(body, head) {
			t.Errorf("tasks%s as %q: %s, want it to start %s", tc.query, tc.token, body, head)
			continue
		}
		var texts []string
		for _, part := range strings.Split(body, `"text":"`)[1:] {
			text, _, _ := strings.Cut(part, `"`)
			texts = append(texts, text)
		}
		if got := strings.Join(texts, ","); got != tc.texts {
			t.Errorf("tasks%s as %q: %s, want %s", tc.query, tc.token, got, tc.texts)
		}
	}
}

// The page size has a default and a maximum, per view.
func TestPageSizes(t *testing.T) {
	db := openDB(t)
	if err := db.AutoMigrate(&Post{}); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := db.Create(&Post{Text: fmt.Sprint(i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	posts := &gormlive.View[Post]{Label: "blog.Post", DB: db, ReadOnly: true, PageSize: 5, MaxPageSize: 10}
	a := &app{srv: httptest.NewServer(http.StripPrefix("/api/posts", rest.Handler(posts, rest.Config{})))}
	t.Cleanup(a.srv.Close)
	for query, want := range map[string]int{"": 5, "?limit=8": 8, "?limit=1000": 10} {
		if got := strings.Count(a.must(t, 200, "GET", "/api/posts/"+query, "", ""), `"id":`); got != want {
			t.Errorf("GET %s: %d instances, want %d", query, got, want)
		}
	}
}

// An update checks that the instance is in the request's queryset and
// writes it in one transaction: a concurrent change that takes the
// instance out of the request's sight cannot land between the check and
// the write. Here the update stops inside the transaction (in Validate)
// while another connection moves the task to a list the requester cannot
// see: either the update wins and the move waits for it, or the move wins
// and the update finds nothing.
func TestUpdateIsAtomic(t *testing.T) {
	for name, dsn := range map[string]string{
		"immediate": "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate",
		"deferred":  "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)",
	} {
		t.Run(name, func(t *testing.T) {
			db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "test.db")+dsn), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			sqlDB, _ := db.DB()
			t.Cleanup(func() { sqlDB.Close() })
			testUpdateIsAtomic(t, db)
		})
	}
}

func testUpdateIsAtomic(t *testing.T, db *gorm.DB) {
	if err := db.AutoMigrate(&List{}, &Task{}); err != nil {
		t.Fatal(err)
	}
	db.Create(&List{ID: 1, Name: "public", Public: true, OwnerID: 1})
	db.Create(&List{ID: 2, Name: "private", OwnerID: 1})
	db.Create(&Task{ID: 1, Text: "t", ListID: 1})
	entered, proceed := make(chan struct{}), make(chan struct{})
	tasks := &gormlive.View[Task]{
		Label: "todolist.Task", DB: db, Writable: []string{"text"},
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			return db.Joins("JOIN lists ON lists.id = tasks.list_id").Where("lists.public"), nil
		},
		Validate: func(ctx context.Context, req *live.Request, task *Task) error {
			select {
			case entered <- struct{}{}:
				<-proceed
			default: // a transaction run again
			}
			return nil
		},
	}
	a := &app{srv: httptest.NewServer(http.StripPrefix("/api/tasks", rest.Handler(tasks, rest.Config{})))}
	t.Cleanup(a.srv.Close)

	answered := make(chan response, 1)
	go func() { answered <- a.do(t, "PATCH", "/api/tasks/1/", bob, `{"text":"bob was here"}`) }()
	<-entered
	moved := make(chan time.Time, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.WithContext(ctx).Exec("UPDATE tasks SET list_id = 2 WHERE id = 1").Error; err != nil {
			t.Errorf("move: %v", err)
		}
		moved <- time.Now()
	}()
	// Give the move every chance to land inside the update's transaction,
	// as it would without one.
	movedInside := false
	select {
	case <-moved:
		movedInside = true
	case <-time.After(300 * time.Millisecond):
	}
	close(proceed)
	res := <-answered
	if !movedInside {
		<-moved
	}
	var task Task
	if err := db.First(&task, 1).Error; err != nil {
		t.Fatal(err)
	}
	if movedInside {
		// The move committed while the update was under way: the update
		// must not write the task it can no longer see.
		if res.code != 404 || task.Text != "t" {
			t.Fatalf("the move landed inside the update, which answered %d and left %+v; want 404 and no write", res.code, task)
		}
	} else if res.code != 200 || task.Text != "bob was here" || task.ListID != 2 {
		t.Fatalf("the move waited for the update, which answered %d %s and left %+v; want 200, then the move", res.code, res.body, task)
	}
}
