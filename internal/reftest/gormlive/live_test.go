package gormlive_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/glebarez/sqlite"
	"github.com/google/uuid"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
)

// The test app: to-do lists, each named after its owner, and "public".

type List struct {
	ID   int64  `json:"id"`
	Name string `json:"name" gorm:"uniqueIndex;not null"`
}

type Todo struct {
	ID     int64  `json:"id"`
	Text   string `json:"text"`
	Done   bool   `json:"done"`
	ListID int64  `json:"list_id" gorm:"index"`
	// TextLength is computed by the query of todoView, not stored.
	TextLength int `json:"text_length,omitempty" gorm:"->;-:migration"`
}

type user struct {
	Name  string
	Admin bool
}

// testDB is a database of one dialect, seeded with the lists and todos
// below, that counts the SELECTs run on it.
type testDB struct {
	*gorm.DB
	queries atomic.Int64
	lastSQL atomic.Value // string
}

var (
	seedLists = []List{{1, "public"}, {2, "alice"}, {3, "bob"}, {4, "many"}}
	seedTodos = []Todo{
		{ID: 1, Text: "buy milk", ListID: 1},
		{ID: 2, Text: "walk dog", Done: true, ListID: 1},
		{ID: 3, Text: "secret plan", ListID: 1},
		{ID: 4, Text: "alice milk", ListID: 2},
		{ID: 5, Text: "bob task", ListID: 3},
	}
)

// manyTodos is how many todos list 4 holds: more than one IN list takes
// on databases other than PostgreSQL.
const manyTodos = 1000

// eachDB runs f on a fresh, seeded SQLite database and, when
// RESTLIVE_POSTGRES_URL is set, on a fresh PostgreSQL schema.
func eachDB(t *testing.T, f func(t *testing.T, db *testDB)) {
	t.Run("sqlite", func(t *testing.T) {
		db := open(t, sqlite.Open(filepath.Join(t.TempDir(), "test.db")))
		f(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		base := testenv.Need(t, "RESTLIVE_POSTGRES_URL")
		admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		name := "gormlive_" + randomHex(6)
		if err := admin.Exec("CREATE SCHEMA " + name).Error; err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := admin.Exec("DROP SCHEMA " + name + " CASCADE").Error; err != nil {
				t.Error(err)
			}
			if sqlDB, err := admin.DB(); err == nil {
				sqlDB.Close()
			}
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		f(t, open(t, postgres.Open(u.String())))
	})
}

func open(t testing.TB, dialector gorm.Dialector) *testDB {
	t.Helper()
	gdb, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := gdb.DB(); err == nil {
			sqlDB.Close()
		}
	})
	db := &testDB{DB: gdb}
	if err := gdb.AutoMigrate(&List{}, &Todo{}); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{gdb.Create(seedLists).Error, gdb.Create(seedTodos).Error} {
		if err != nil {
			t.Fatal(err)
		}
	}
	err = gdb.Callback().Query().After("gorm:query").Register("test:count", func(tx *gorm.DB) {
		db.queries.Add(1)
		db.lastSQL.Store(tx.Statement.SQL.String())
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// plainView serves Todo with every default.
func plainView(db *testDB) *gormlive.View[Todo] {
	return &gormlive.View[Todo]{Label: "todolist.Todo", DB: db.DB, GroupFields: []string{"list_id", "done"}, ListAll: true}
}

// todoView is a view as an application writes one: users see the todos of
// their own list and of "public" (admins see all), filtered by ?search=
// and by the "list" argument; secret todos are for admins; anonymous
// users see less of each todo, and may not group by "done".
func todoView(db *testDB) *gormlive.View[Todo] {
	return &gormlive.View[Todo]{
		Label:       "todolist.Todo",
		DB:          db.DB,
		GroupFields: []string{"list_id", "done"},
		ListAll:     true,
		QueryParams: []string{"search"},
		Args:        []string{"list"},
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			db = db.Select("todos.*, length(todos.text) AS text_length").
				Joins("JOIN lists ON lists.id = todos.list_id")
			u, _ := req.User.(*user)
			switch {
			case u == nil:
				db = db.Where("lists.name = ?", "public")
			case !u.Admin:
				db = db.Where("lists.name IN ?", []string{"public", u.Name})
			}
			if s := req.Query.Get("search"); s != "" {
				db = db.Where("todos.text LIKE ?", "%"+s+"%")
			}
			if arg, ok := req.Args["list"]; ok {
				id, err := strconv.ParseInt(arg, 10, 64)
				if err != nil {
					return nil, live.Errorf(400, "list: %q is not a number", arg)
				}
				db = db.Where("todos.list_id = ?", id)
			}
			return db, nil
		},
		Permit: func(ctx context.Context, req *live.Request) error {
			if req.Anonymous() && req.GroupBy == "done" {
				return live.ErrForbidden
			}
			return nil
		},
		PermitObject: func(_ context.Context, req *live.Request, m *Todo) error {
			if u, _ := req.User.(*user); !strings.HasPrefix(m.Text, "secret") || (u != nil && u.Admin) {
				return nil
			}
			return live.ErrNotFound
		},
		Serialize: func(_ context.Context, req *live.Request, m *Todo) (any, error) {
			if req.Anonymous() {
				return map[string]any{"id": m.ID, "text": m.Text}, nil
			}
			return m, nil
		},
	}
}

var (
	alice = &user{Name: "alice"}
	admin = &user{Name: "root", Admin: true}
)

// request returns the request of a subscription by u (nil: anonymous) to
// the group field=value, or to one instance when field is live.PK.
func request(u *user, field, value string) *live.Request {
	req := &live.Request{Action: "list", GroupBy: field, Value: value, Args: map[string]string{}, Query: url.Values{}}
	if field == live.PK {
		req.Action = "retrieve"
	}
	if u != nil {
		req.User, req.UserID = u, u.Name
	}
	return req
}

func subscribe[M any](t *testing.T, v *gormlive.View[M], req *live.Request) live.Scope {
	t.Helper()
	s, err := v.Subscribe(context.Background(), req)
	if err != nil {
		t.Fatalf("Subscribe(%s=%s): %v", req.GroupBy, req.Value, err)
	}
	return s
}

// members returns the scope's members as "pk id" strings, sorted.
func members(t *testing.T, s live.Scope) []string {
	t.Helper()
	ins, err := s.Members(context.Background())
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	var out []string
	for _, in := range ins {
		if !json.Valid(in.Data) {
			t.Errorf("Members: %s has Data %q, want its serialized instance", in.PK, in.Data)
		}
		out = append(out, in.PK+" "+string(in.ID))
	}
	slices.Sort(out)
	return out
}

// fetch returns the instances Fetch(pks) finds, by pk, as their Data.
func fetch(t *testing.T, s live.Scope, pks ...string) map[string]string {
	t.Helper()
	ins, err := s.Fetch(context.Background(), pks)
	if err != nil {
		t.Fatalf("Fetch%v: %v", pks, err)
	}
	out := map[string]string{}
	for _, in := range ins {
		if !json.Valid(in.ID) {
			t.Errorf("Fetch: ID %q is not JSON", in.ID)
		}
		if _, dup := out[in.PK]; dup {
			t.Errorf("Fetch: %s twice", in.PK)
		}
		out[in.PK] = string(in.Data)
	}
	return out
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func checkSlice(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func checkMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s[%s] = %q, want %q", what, k, g, w)
		}
	}
}

func TestDescribe(t *testing.T) {
	v := &gormlive.View[List]{Label: "todolist.List", GroupFields: []string{"name"}, QueryParams: []string{"q"}, ListAll: true}
	spec := v.Spec()
	check(t, "Model", spec.Model, "todolist.List")
	checkSlice(t, "GroupBy", spec.GroupBy, []string{"name"})
	checkSlice(t, "QueryParams", spec.QueryParams, []string{"q"})
	check(t, "ListAll", spec.ListAll, true)
	check(t, "Lookup", spec.Lookup, live.PK)
	v.LookupField = "name"
	check(t, "Lookup", v.Spec().Lookup, "name")
}

// TestParse checks that a value names one group whatever its spelling,
// by the column's type, and that values the column cannot hold are
// refused with the reason.
func TestParse(t *testing.T) {
	db := open(t, sqlite.Open(filepath.Join(t.TempDir(), "test.db")))
	v := &gormlive.View[Todo]{Label: "todolist.Todo", DB: db.DB, GroupFields: []string{"list_id", "done", "text"}}
	for _, c := range []struct {
		field, value, canonical, json string
	}{
		{live.PK, "7", "7", "7"},
		{live.PK, "007", "7", "7"},
		{"list_id", "01", "1", "1"},
		{"list_id", "-3", "-3", "-3"},
		{"done", "true", "true", "true"},
		{"done", "1", "true", "true"},
		{"text", "01", "01", `"01"`},
	} {
		got, err := v.Parse(c.field, c.value)
		if err != nil || got.Canonical != c.canonical || string(got.JSON) != c.json {
			t.Errorf("Parse(%s, %q) = %q %s %v, want %q %s", c.field, c.value, got.Canonical, got.JSON, err, c.canonical, c.json)
		}
	}
	for _, c := range []struct{ field, value string }{
		{"list_id", "1.5"}, {"list_id", "x"}, {live.PK, "99999999999999999999"}, {"done", "maybe"}, {"nope", "1"},
	} {
		if got, err := v.Parse(c.field, c.value); err == nil {
			t.Errorf("Parse(%s, %q) = %v, want an error", c.field, c.value, got)
		}
	}
}

func TestCheck(t *testing.T) {
	db := open(t, sqlite.Open(filepath.Join(t.TempDir(), "test.db")))
	type NoPK struct{ Name string }
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"ok", (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, GroupFields: []string{"list_id", "done"}, LookupField: "id"}).Check(), ""},
		{"label", (&gormlive.View[Todo]{Label: "Task", DB: db.DB}).Check(), `gormlive: view "Task": the label must have the form app.Model`},
		{"label2", (&gormlive.View[Todo]{Label: "todolist.Task.x", DB: db.DB}).Check(), `gormlive: view "todolist.Task.x": the label must have the form app.Model`},
		{"db", (&gormlive.View[Todo]{Label: "todolist.Task"}).Check(), `gormlive: view "todolist.Task": DB is nil`},
		{"group", (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, GroupFields: []string{"lst_id"}}).Check(), `gormlive: view "todolist.Task": group field "lst_id" is not a column of Todo`},
		{"group by Go name", (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, GroupFields: []string{"ListID"}}).Check(), `gormlive: view "todolist.Task": group field "ListID" is not a column of Todo`},
		{"group pk", (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, GroupFields: []string{"pk"}}).Check(), `gormlive: view "todolist.Task": group field "pk" means the instance itself and cannot be listed`},
		{"lookup", (&gormlive.View[List]{Label: "todolist.List", DB: db.DB, LookupField: "slug"}).Check(), `gormlive: view "todolist.List": lookup field "slug" is not a column of List`},
		{"dependency field", (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, Dependencies: []live.Dependency{{Model: "todolist.List", Field: "list"}}}).Check(), `gormlive: view "todolist.Task": dependency field "list" is not a column of Todo`},
		{"dependency model", (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, Dependencies: []live.Dependency{{Model: "List", Field: "list_id"}}}).Check(), `gormlive: view "todolist.Task": dependency model "List" must have the form app.Model`},
		{"no pk", (&gormlive.View[NoPK]{Label: "todolist.NoPK", DB: db.DB}).Check(), `gormlive: view "todolist.NoPK": NoPK must have exactly one primary key field, it has 0`},
	} {
		got := ""
		if c.err != nil {
			got = c.err.Error()
		}
		check(t, c.name, got, c.want)
	}
	// Subscribe refuses a broken view the same way, as an internal error.
	_, err := (&gormlive.View[Todo]{Label: "todolist.Task", DB: db.DB, GroupFields: []string{"lst_id"}}).Subscribe(context.Background(), request(nil, live.PK, "1"))
	var lerr *live.Error
	if err == nil || errors.As(err, &lerr) {
		t.Errorf("Subscribe on a broken view: %v, want a plain error", err)
	}
}

func TestDefaults(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		v := plainView(db)

		one := subscribe(t, v, request(nil, live.PK, "2"))
		check(t, "Key", one.Key(), "")
		checkSlice(t, "pk Members", members(t, one), []string{`2 {"id":2}`})
		checkMap(t, "pk Fetch", fetch(t, one, "2", "3"), map[string]string{"2": `{"id":2,"text":"walk dog","done":true,"list_id":1}`})
		checkMap(t, "pk Fetch of another", fetch(t, one, "3"), nil)

		group := subscribe(t, v, request(alice, "list_id", "1"))
		check(t, "Key", group.Key(), "alice")
		checkSlice(t, "group Members", members(t, group), []string{`1 {"id":1}`, `2 {"id":2}`, `3 {"id":3}`})
		checkMap(t, "group Fetch", fetch(t, group, "1", "4", "99", "abc", "1.5"), map[string]string{"1": `{"id":1,"text":"buy milk","done":false,"list_id":1}`})
		checkMap(t, "group Fetch of none", fetch(t, group), nil)

		done := subscribe(t, v, request(nil, "done", "true"))
		checkSlice(t, "bool group Members", members(t, done), []string{`2 {"id":2}`})

		all := subscribe(t, v, request(nil, "", ""))
		checkSlice(t, "ungrouped Members", members(t, all), []string{`1 {"id":1}`, `2 {"id":2}`, `3 {"id":3}`, `4 {"id":4}`, `5 {"id":5}`})
		checkMap(t, "ungrouped Fetch", fetch(t, all, "5", "6"), map[string]string{"5": `{"id":5,"text":"bob task","done":false,"list_id":3}`})
	})
}

func TestQuery(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		v := todoView(db)
		for _, c := range []struct {
			name    string
			req     *live.Request
			members []string
		}{
			{"anonymous sees public", request(nil, "list_id", "1"), []string{`1 {"id":1}`, `2 {"id":2}`}},
			{"anonymous does not see alice's", request(nil, "list_id", "2"), nil},
			{"alice sees hers", request(alice, "list_id", "2"), []string{`4 {"id":4}`}},
			{"alice does not see bob's", request(alice, "list_id", "3"), nil},
			{"alice does not see bob's by pk", request(alice, live.PK, "5"), nil},
			{"admin sees secrets", request(admin, "list_id", "1"), []string{`1 {"id":1}`, `2 {"id":2}`, `3 {"id":3}`}},
			{"search", with(request(nil, "list_id", "1"), "search", "milk"), []string{`1 {"id":1}`}},
			{"search across lists", with(request(alice, "done", "false"), "search", "milk"), []string{`1 {"id":1}`, `4 {"id":4}`}},
			{"args", withArg(request(alice, "done", "false"), "list", "2"), []string{`4 {"id":4}`}},
			{"ungrouped", request(alice, "", ""), []string{`1 {"id":1}`, `2 {"id":2}`, `4 {"id":4}`}},
		} {
			t.Run(c.name, func(t *testing.T) {
				checkSlice(t, "Members", members(t, subscribe(t, v, c.req)), c.members)
			})
		}

		// PermitObject hides secrets from Fetch too; the annotated field
		// comes from the query's Select; anonymous users get less.
		anon := subscribe(t, v, request(nil, "list_id", "1"))
		checkMap(t, "anonymous Fetch", fetch(t, anon, "1", "3", "4"), map[string]string{"1": `{"id":1,"text":"buy milk"}`})
		root := subscribe(t, v, request(admin, "list_id", "1"))
		checkMap(t, "admin Fetch", fetch(t, root, "1", "3", "4"), map[string]string{
			"1": `{"id":1,"text":"buy milk","done":false,"list_id":1,"text_length":8}`,
			"3": `{"id":3,"text":"secret plan","done":false,"list_id":1,"text_length":11}`,
		})
		one := subscribe(t, v, request(alice, live.PK, "4"))
		checkSlice(t, "alice pk Members", members(t, one), []string{`4 {"id":4}`})
		checkMap(t, "alice pk Fetch", fetch(t, one, "4"), map[string]string{"4": `{"id":4,"text":"alice milk","done":false,"list_id":2,"text_length":10}`})
	})
}

func with(req *live.Request, key, value string) *live.Request {
	req.Query.Set(key, value)
	return req
}

func withArg(req *live.Request, key, value string) *live.Request {
	req.Args[key] = value
	return req
}

func TestLookupField(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		v := &gormlive.View[List]{Label: "todolist.List", DB: db.DB, LookupField: "name"}
		s := subscribe(t, v, request(nil, live.PK, "alice"))
		checkSlice(t, "Members", members(t, s), []string{`2 {"id":2,"name":"alice"}`})
		ins, err := s.Fetch(context.Background(), []string{"1", "2"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) != 1 {
			t.Fatalf("Fetch = %d instances, want 1", len(ins))
		}
		check(t, "PK", ins[0].PK, "2")
		check(t, "ID", string(ins[0].ID), `{"id":2,"name":"alice"}`)
		check(t, "Data", string(ins[0].Data), `{"id":2,"name":"alice"}`)
		checkSlice(t, "Members of none", members(t, subscribe(t, v, request(nil, live.PK, "carol"))), nil)
	})
}

func TestFetchIsOneQuery(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		many := make([]Todo, manyTodos)
		pks := make([]string, manyTodos)
		for i := range many {
			many[i] = Todo{ID: int64(1001 + i), Text: fmt.Sprint("todo ", i), ListID: 4}
			pks[i] = strconv.Itoa(1001 + i)
		}
		if err := db.CreateInBatches(many, 250).Error; err != nil {
			t.Fatal(err)
		}
		s := subscribe(t, todoView(db), request(admin, "list_id", "4"))
		for _, n := range []int{1, 600} {
			before := db.queries.Load()
			check(t, fmt.Sprintf("Fetch of %d", n), len(fetch(t, s, pks[:n]...)), n)
			check(t, fmt.Sprintf("queries for a Fetch of %d", n), db.queries.Load()-before, 1)
		}
		// Beyond what one IN list may carry, Fetch still finds them all.
		check(t, "Fetch of all", len(fetch(t, s, pks...)), manyTodos)
		before := db.queries.Load()
		fetch(t, s, pks...)
		if db.Dialector.Name() == "postgres" {
			// All pks are one array parameter, so the statement's text is
			// the same whatever their number.
			check(t, "queries for a Fetch of all on PostgreSQL", db.queries.Load()-before, 1)
			if sql := db.lastSQL.Load().(string); !strings.Contains(sql, `"todos"."id" = ANY($`) {
				t.Errorf("Fetch ran %s, want an ANY of one array parameter", sql)
			}
		} else {
			check(t, "queries for a Fetch of all", db.queries.Load()-before, 2)
		}
		before = db.queries.Load()
		members(t, s)
		check(t, "queries for Members", db.queries.Load()-before, 1)
	})
}

func TestRefusals(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		v := todoView(db)
		for _, c := range []struct {
			name string
			req  *live.Request
			code int
		}{
			{"pk not a number", request(alice, live.PK, "abc"), 400},
			{"pk not an integer", request(alice, live.PK, "1.5"), 400},
			{"group value not a number", request(alice, "list_id", "abc"), 400},
			{"group value not a bool", request(alice, "done", "maybe"), 400},
			{"not a group field", request(alice, "text", "x"), 400},
			{"bad argument from Query", withArg(request(alice, "list_id", "1"), "list", "x"), 400},
			{"Permit", request(nil, "done", "true"), 403},
		} {
			t.Run(c.name, func(t *testing.T) {
				s, err := v.Subscribe(context.Background(), c.req)
				var lerr *live.Error
				if !errors.As(err, &lerr) || lerr.Code != c.code {
					t.Fatalf("Subscribe = %v, %v; want a %d", s, err, c.code)
				}
			})
		}
		_, err := v.Subscribe(context.Background(), request(nil, "done", "true"))
		if !errors.Is(err, live.ErrForbidden) {
			t.Errorf("Permit's error %v did not pass through", err)
		}
	})
}

func TestVaryAndContext(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		v := plainView(db)
		v.Vary = func(req *live.Request) string { return req.Query.Get("lang") }
		check(t, "Key", subscribe(t, v, with(request(alice, "list_id", "1"), "lang", "fr")).Key(), "fr")

		// The scope outlives the subscribe call and its request: it queries
		// with the context it is handed.
		ctx, cancel := context.WithCancel(context.Background())
		req := request(alice, "list_id", "1")
		s, err := v.Subscribe(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		checkSlice(t, "Members after the subscribe context ended", members(t, s), []string{`1 {"id":1}`, `2 {"id":2}`, `3 {"id":3}`})
		if _, err := s.Fetch(ctx, []string{"1"}); !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch with a cancelled context = %v, want context.Canceled", err)
		}
		if _, err := s.Members(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Members with a cancelled context = %v, want context.Canceled", err)
		}
	})
}

// TestConcurrent shares one scope between goroutines, as the hub does.
func TestConcurrent(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		s := subscribe(t, todoView(db), request(alice, "list_id", "1"))
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Go(func() {
				ins, err := s.Fetch(context.Background(), []string{"1", "2", strconv.Itoa(i)})
				if err == nil && len(ins) != 2 {
					err = fmt.Errorf("Fetch found %d, want 2", len(ins))
				}
				if err != nil {
					errs <- err
				}
				if _, err := s.Members(context.Background()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func BenchmarkFetch(b *testing.B) {
	gdb, err := gorm.Open(sqlite.Open(filepath.Join(b.TempDir(), "bench.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if sqlDB, err := gdb.DB(); err == nil {
			sqlDB.Close()
		}
	}()
	if err := gdb.AutoMigrate(&Todo{}); err != nil {
		b.Fatal(err)
	}
	todos := make([]Todo, 100)
	pks := make([]string, len(todos))
	for i := range todos {
		todos[i] = Todo{ID: int64(i + 1), Text: "todo", ListID: 1}
		pks[i] = strconv.Itoa(i + 1)
	}
	if err := gdb.Create(todos).Error; err != nil {
		b.Fatal(err)
	}
	v := &gormlive.View[Todo]{Label: "todolist.Todo", DB: gdb, GroupFields: []string{"list_id"}}
	s, err := v.Subscribe(context.Background(), request(nil, "list_id", "1"))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprint(n, "pks"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ins, err := s.Fetch(context.Background(), pks[:n])
				if err != nil || len(ins) != n {
					b.Fatal(len(ins), err)
				}
			}
		})
	}
}

// A Doc has a UUID primary key: a type the driver binds by its Value and
// that tells its own values by Scan.
type Doc struct {
	ID   uuid.UUID `json:"id" gorm:"type:uuid;primaryKey"`
	Name string    `json:"name"`
}

func TestUUID(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		if err := db.AutoMigrate(&Doc{}); err != nil {
			t.Fatal(err)
		}
		d := Doc{ID: uuid.New(), Name: "x"}
		if err := db.Create(&d).Error; err != nil {
			t.Fatal(err)
		}
		id := d.ID.String()
		v := &gormlive.View[Doc]{Label: "docs.Doc", DB: db.DB, GroupFields: []string{"name"}}
		group := subscribe(t, v, request(nil, "name", "x"))
		checkSlice(t, "Members", members(t, group), []string{id + ` {"id":"` + id + `"}`})
		// A pk that is not a UUID matches nothing rather than failing the
		// query for the others.
		checkMap(t, "Fetch", fetch(t, group, id, "nope", uuid.NewString()), map[string]string{id: `{"id":"` + id + `","name":"x"}`})
		one := subscribe(t, v, request(nil, live.PK, strings.ToUpper(id)))
		checkMap(t, "pk Fetch", fetch(t, one, id), map[string]string{id: `{"id":"` + id + `","name":"x"}`})

		_, err := v.Subscribe(context.Background(), request(nil, live.PK, "nope"))
		var lerr *live.Error
		if !errors.As(err, &lerr) || lerr.Code != 400 {
			t.Errorf("Subscribe to a pk that is not a UUID = %v, want a 400", err)
		}
	})
}
