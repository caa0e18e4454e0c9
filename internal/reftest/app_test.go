package reftest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgcapture"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
	"github.com/restlive/restlive/sqlview"
	"github.com/restlive/restlive/sqlview/pgxview"
)

// The test app of django-rest-live: lists of to-dos.
type List struct {
	ID       uint   `json:"id"`
	Name     string `json:"name" gorm:"uniqueIndex"`
	Archived bool   `json:"archived"`
}

type Todo struct {
	ID     uint   `json:"id"`
	Text   string `json:"text"`
	Done   bool   `json:"done"`
	ListID uint   `json:"list_id"`
	List   *List  `json:"-"`
	// Loud is computed by the annotated view's query.
	Loud string `json:"-" gorm:"->;-:migration"`
}

// user is who "Authorization: Token <name>" logs in.
type user struct{ Name string }

func authenticate(r *http.Request) (live.Identity, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
	if !ok || name == "" {
		return live.Identity{}, nil
	}
	return live.Identity{User: &user{Name: name}, ID: name}, nil
}

// app is one test's database, capture and layer, and the kind of view it
// serves.
type app struct {
	t       *testing.T
	kind    kind
	dialect capture.Dialect
	db      *gorm.DB
	sqlDB   *sql.DB
	querier sqlview.Querier // what sqlview.Views read through
	layer   *live.MemoryLayer
	queries atomic.Int64 // SELECTs the views run: the hub's
	// external runs SQL in another process: the sqlite3 or psql command.
	external func(sql string)
}

// databases runs test on SQLite and on PostgreSQL, with gormlive views
// and with sqlview views (on PostgreSQL through database/sql and through
// a pgx pool).
func databases(t *testing.T, test func(t *testing.T, a *app)) {
	for _, k := range []kind{gormKind, sqlKind} {
		t.Run("sqlite/"+k.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.db")
			a := newApp(t, k, sqlite.Open("file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"), capture.SQLite)
			a.external = func(sql string) { command(t, "sqlite3", "-cmd", ".timeout 5000", path, sql) }
			test(t, a)
		})
	}
	for _, k := range []kind{gormKind, sqlKind, pgxKind} {
		t.Run("postgres/"+k.String(), func(t *testing.T) {
			url := testenv.PostgresDB(t)
			a := newApp(t, k, postgres.Open(url), pgcapture.Dialect)
			a.external = func(sql string) { command(t, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql) }
			if k == pgxKind {
				pool, err := pgxpool.New(context.Background(), url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				a.querier = counting{pgxview.Pool(pool), &a.queries}
			}
			test(t, a)
		})
	}
}

func newApp(t *testing.T, k kind, dialector gorm.Dialector, dialect capture.Dialect) *app {
	t.Helper()
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{t: t, kind: k, dialect: dialect, db: db, layer: live.NewMemoryLayer()}
	if err := db.Callback().Query().Before("gorm:query").Register("reftest:count", func(*gorm.DB) { a.queries.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&List{}, &Todo{}); err != nil {
		t.Fatal(err)
	}
	if a.sqlDB, err = db.DB(); err != nil {
		t.Fatal(err)
	}
	d := sqlview.SQLite
	if dialect == pgcapture.Dialect {
		d = sqlview.Postgres
	}
	a.querier = counting{sqlview.SQL(a.sqlDB, d), &a.queries}
	ctx, cancel := context.WithCancel(context.Background())
	err = capture.Install(ctx, a.sqlDB, dialect,
		capture.Table{Model: "test_app.List", Table: "lists", PK: "id", Fields: []string{"name"}},
		capture.Table{Model: "test_app.Todo", Table: "todos", PK: "id", Fields: []string{"list_id"}})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := capture.NewReader(a.sqlDB, dialect, capture.Config{
		Publisher: a.layer, PollInterval: 5 * time.Millisecond, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reader.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("capture reader: %v", err)
		}
		a.sqlDB.Close()
	})
	return a
}

func command(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", name, err, out)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// router returns a router of views, of the app's kind, over its layer.
func (a *app) router(views ...liveView) *live.Router {
	rt := live.NewRouter(live.Config{Layer: a.layer, Authenticate: authenticate, Logger: quiet()})
	for _, v := range views {
		rt.Register(v.build(a))
	}
	a.t.Cleanup(func() { rt.Close() })
	return rt
}

// todoView is the basic to-do view: every to-do, grouped by list.
func (a *app) todoView() *view[Todo] {
	return &view[Todo]{
		Label:       "test_app.Todo",
		GroupFields: []string{"list_id"},
		Serialize: func(_ context.Context, _ *live.Request, t *Todo) (any, error) {
			return map[string]any{"id": t.ID, "text": t.Text, "done": t.Done}, nil
		},
	}
}

func (a *app) makeList(name string) *List {
	a.t.Helper()
	l := &List{Name: name}
	if err := a.db.Create(l).Error; err != nil {
		a.t.Fatal(err)
	}
	return l
}

func (a *app) makeTodo(list *List, text string) *Todo {
	a.t.Helper()
	todo := &Todo{Text: text, ListID: list.ID}
	if err := a.db.Create(todo).Error; err != nil {
		a.t.Fatal(err)
	}
	return todo
}

func (a *app) save(v any) {
	a.t.Helper()
	if err := a.db.Save(v).Error; err != nil {
		a.t.Fatal(err)
	}
}

func connect(t *testing.T, h http.Handler, username string) *livetest.Communicator {
	t.Helper()
	var header http.Header
	if username != "" {
		header = livetest.TokenHeader("Token", username)
	}
	return livetest.Connect(t, h, &livetest.Options{Header: header, Quiet: 300 * time.Millisecond})
}

// subscribe subscribes with an ack and waits for it: every change
// committed afterwards is delivered.
func subscribe(t *testing.T, c *livetest.Communicator, msg map[string]any) {
	t.Helper()
	msg["ack"] = true
	c.Send(msg)
	if reply := c.Receive(); reply["type"] != "subscribed" {
		t.Fatalf("subscribe %v: got %v", msg, reply)
	}
}

func unsubscribe(t *testing.T, c *livetest.Communicator, id any) {
	t.Helper()
	c.Send(map[string]any{"request_id": id, "unsubscribe": true, "ack": true})
	if reply := c.Receive(); reply["type"] != "unsubscribed" {
		t.Fatalf("unsubscribe %v: got %v", id, reply)
	}
}

// receive waits for a broadcast and checks its request, action and
// instance, which must equal want exactly (compared as JSON values).
func receive(t *testing.T, c *livetest.Communicator, id any, action string, want map[string]any) {
	t.Helper()
	got := c.Receive()
	if got["type"] != "broadcast" || fmt.Sprint(got["request_id"]) != fmt.Sprint(id) || got["action"] != action {
		t.Fatalf("got %v, want a %s broadcast for request %v", got, action, id)
	}
	if fmt.Sprint(got["instance"]) != fmt.Sprint(jsonValues(want)) {
		t.Fatalf("%s instance = %v, want %v", action, got["instance"], want)
	}
}

// jsonValues turns want's numbers into float64, as decoded JSON has them.
func jsonValues(want map[string]any) map[string]any {
	out := make(map[string]any, len(want))
	for k, v := range want {
		switch v := v.(type) {
		case int:
			out[k] = float64(v)
		case uint:
			out[k] = float64(v)
		default:
			out[k] = v
		}
	}
	return out
}

func todoJSON(t *Todo) map[string]any {
	return map[string]any{"id": t.ID, "text": t.Text, "done": t.Done}
}
