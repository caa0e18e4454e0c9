package sqlview_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	_ "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/sqlview"
	"github.com/restlive/restlive/sqlview/pgxview"
)

// Note is the row type of the tests' table.
type Note struct {
	ID    int64  `json:"id"`
	Owner string `json:"owner"`
	Text  string `json:"text"`
	Pin   bool   `json:"pin"`
}

const schema = `CREATE TABLE notes (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, text TEXT NOT NULL, pin BOOLEAN NOT NULL DEFAULT FALSE)`

var seed = []Note{
	{1, "ann", "buy milk", false},
	{2, "bob", "it's 1 OR 1=1", true},
	{3, "bob", "bob's -- secret", false},
	{4, "bob", "plain", true},
}

// recorder remembers the statements a Querier runs.
type recorder struct {
	sqlview.Querier
	mu    sync.Mutex
	stmts []string
}

func (r *recorder) Query(ctx context.Context, query string, args ...any) (sqlview.Rows, error) {
	r.mu.Lock()
	r.stmts = append(r.stmts, query)
	r.mu.Unlock()
	return r.Querier.Query(ctx, query, args...)
}

func (r *recorder) statements() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.stmts, "\n")
}

// databases runs test with a seeded notes table on SQLite, and on
// PostgreSQL through database/sql and through a pgx pool.
func databases(t *testing.T, test func(t *testing.T, q sqlview.Querier, db *sql.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db := open(t, "sqlite", filepath.Join(t.TempDir(), "notes.db"))
		test(t, sqlview.SQL(db, sqlview.SQLite), db)
	})
	t.Run("postgres", func(t *testing.T) {
		url := testenv.PostgresDB(t)
		db := open(t, "pgx", url)
		test(t, sqlview.SQL(db, sqlview.Postgres), db)
	})
	t.Run("postgres-pgx", func(t *testing.T) {
		url := testenv.PostgresDB(t)
		db := open(t, "pgx", url)
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		test(t, pgxview.Pool(pool), db)
	})
}

func open(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	for _, n := range seed {
		if _, err := db.Exec(`INSERT INTO notes (id, owner, text, pin) VALUES ($1, $2, $3, $4)`, n.ID, n.Owner, n.Text, n.Pin); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// notesView serves each user their own notes, filtered by ?search=, and
// groups them by owner, text and pin.
func notesView(q sqlview.Querier) *sqlview.View[Note] {
	return &sqlview.View[Note]{
		Label: "app.Note", DB: q, Table: "notes",
		GroupFields: []string{"owner", "text", "pin"}, QueryParams: []string{"search"},
		Query: func(_ context.Context, req *live.Request, f *sqlview.Filter) error {
			if s := req.Query.Get("search"); s != "" {
				f.Where("notes.text LIKE ?", "%"+s+"%")
			}
			return nil
		},
	}
}

func request(groupBy, value, search string) *live.Request {
	req := &live.Request{Action: live.ActionList, GroupBy: groupBy, Value: value, Args: map[string]string{}, Query: map[string][]string{}}
	if groupBy == live.PK {
		req.Action = live.ActionRetrieve
	}
	if search != "" {
		req.Query.Set("search", search)
	}
	return req
}

// members returns the pks of the scope's members, sorted.
func members(t *testing.T, v *sqlview.View[Note], req *live.Request) []string {
	t.Helper()
	s, err := v.Subscribe(context.Background(), req)
	if err != nil {
		t.Fatalf("Subscribe(%s=%q): %v", req.GroupBy, req.Value, err)
	}
	ins, err := s.Members(context.Background())
	if err != nil {
		t.Fatalf("Members(%s=%q): %v", req.GroupBy, req.Value, err)
	}
	var pks []string
	for _, in := range ins {
		pks = append(pks, in.PK)
	}
	slices.Sort(pks)
	return pks
}

// TestHostileValuesAreBound sends what would change a statement built by
// concatenation, as group values, lookups, keys and query parameters:
// each matches only the rows holding exactly that text, no statement
// holds it, and the table is still there.
func TestHostileValuesAreBound(t *testing.T) {
	hostile := []string{"1 OR 1=1", "' OR '1'='1", "x'; DROP TABLE notes; --", "--", `" OR ""="`, "?", "$1"}
	databases(t, func(t *testing.T, q sqlview.Querier, db *sql.DB) {
		rec := &recorder{Querier: q}
		v := notesView(rec)
		ctx := context.Background()
		for _, h := range hostile {
			if got := members(t, v, request("owner", h, "")); len(got) != 0 {
				t.Errorf("group owner=%q: members %v, want none", h, got)
			}
			if got := members(t, v, request("text", h, "")); len(got) != 0 {
				t.Errorf("group text=%q: members %v, want none", h, got)
			}
			if got := members(t, v, request("owner", "ann", h)); len(got) != 0 {
				t.Errorf("search %q: members %v, want none", h, got)
			}
			if _, err := v.Get(ctx, request("", "", ""), h); !errors.Is(err, live.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want not found", h, err)
			}
			s, _ := v.Subscribe(ctx, request("owner", "ann", ""))
			if got, err := s.Fetch(ctx, []string{h, "1"}); err != nil || len(got) != 1 {
				t.Errorf("Fetch(%q, 1) = %v %v, want note 1 alone", h, got, err)
			}
			// An integer column refuses the value before any query.
			if _, err := v.Parse(live.PK, h); err == nil {
				t.Errorf("Parse(pk, %q) accepted it", h)
			}
		}
		// The values match as data, exactly.
		if got := members(t, v, request("text", "it's 1 OR 1=1", "")); !slices.Equal(got, []string{"2"}) {
			t.Errorf("group text=\"it's 1 OR 1=1\": members %v, want [2]", got)
		}
		if got := members(t, v, request("owner", "bob", "-- secret")); !slices.Equal(got, []string{"3"}) {
			t.Errorf("search \"-- secret\": members %v, want [3]", got)
		}
		stmts := rec.statements()
		for _, h := range append(hostile, "it's", "secret") {
			if len(h) > 2 && strings.Contains(stmts, h) {
				t.Errorf("a statement holds the client's %q:\n%s", h, stmts)
			}
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM notes`).Scan(&n); err != nil || n != len(seed) {
			t.Fatalf("notes after the tries: %d %v, want %d", n, err, len(seed))
		}
	})
}

// TestConditionPlaceholders checks how Query's conditions become
// statements: a ? in quoted text is text, comments and a count of
// arguments that is not the count of parameters are refused.
func TestConditionPlaceholders(t *testing.T) {
	databases(t, func(t *testing.T, q sqlview.Querier, _ *sql.DB) {
		for _, c := range []struct {
			cond string
			args []any
			want []string // pks, or nil for an error
		}{
			{"notes.text <> '?' AND notes.owner = ?", []any{"bob"}, []string{"2", "3", "4"}},
			{`notes.owner = ? AND notes.text LIKE ?`, []any{"bob", "%'s -%"}, []string{"3"}},
			{"notes.owner = ?", nil, nil},
			{"notes.owner = ?", []any{"ann", "bob"}, nil},
			{"notes.owner = ? -- and more", []any{"ann"}, nil},
			{"notes.owner = ? /* and more */", []any{"ann"}, nil},
			{"notes.owner = 'ann", nil, nil},
		} {
			v := notesView(q)
			v.Query = func(_ context.Context, _ *live.Request, f *sqlview.Filter) error {
				f.Where(c.cond, c.args...)
				return nil
			}
			v.ListAll = true
			s, err := v.Subscribe(context.Background(), request("", "", ""))
			if err != nil {
				t.Fatal(err)
			}
			ins, err := s.Members(context.Background())
			var got []string
			for _, in := range ins {
				got = append(got, in.PK)
			}
			slices.Sort(got)
			if c.want == nil && err == nil || c.want != nil && (err != nil || !slices.Equal(got, c.want)) {
				t.Errorf("Where(%q, %v): %v %v, want %v", c.cond, c.args, got, err, c.want)
			}
		}
	})
}

func TestCheck(t *testing.T) {
	q := sqlview.SQL(nil, sqlview.SQLite)
	type NoID struct{ Key string }
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"ok", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes", GroupFields: []string{"owner", "pin"}, LookupField: "text"}).Check(), ""},
		{"label", (&sqlview.View[Note]{Label: "Note", DB: q, Table: "notes"}).Check(), `sqlview: view "Note": the label must have the form app.Model`},
		{"db", (&sqlview.View[Note]{Label: "app.Note", Table: "notes"}).Check(), `sqlview: view "app.Note": DB is nil`},
		{"table", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes; DROP TABLE notes"}).Check(), `sqlview: view "app.Note": Table "notes; DROP TABLE notes" is not a table name`},
		{"no table", (&sqlview.View[Note]{Label: "app.Note", DB: q}).Check(), `sqlview: view "app.Note": Table "" is not a table name`},
		{"group not a name", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes", GroupFields: []string{"owner OR 1=1"}}).Check(), `sqlview: view "app.Note": "owner OR 1=1" is not a column name`},
		{"group not a column", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes", GroupFields: []string{"list_id"}}).Check(), `sqlview: view "app.Note": group field "list_id" is not a column of Note`},
		{"lookup", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes", LookupField: "slug"}).Check(), `sqlview: view "app.Note": lookup field "slug" is not a column of Note`},
		{"pk", (&sqlview.View[NoID]{Label: "app.NoID", DB: q, Table: "keys"}).Check(), `sqlview: view "app.NoID": primary key "id" is not a column of NoID`},
		{"dependency", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes", Dependencies: []live.Dependency{{Model: "app.List", Field: "list_id"}}}).Check(), `sqlview: view "app.Note": dependency field "list_id" is not a column of Note`},
		{"schema", (&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "app.notes"}).Check(), ""},
	} {
		got := ""
		if c.err != nil {
			got = c.err.Error()
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// A router refuses a broken view at registration.
	defer func() {
		if recover() == nil {
			t.Error("Register of a view with a bad group field did not panic")
		}
	}()
	live.NewRouter(live.Config{}).Register(&sqlview.View[Note]{Label: "app.Note", DB: q, Table: "notes", GroupFields: []string{"nope"}})
}
