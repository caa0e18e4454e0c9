package capture

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
)

// A testDB is one real database a test runs against, with the to-do
// schema: lists, and tasks that belong to a list.
type testDB struct {
	dialect Dialect
	db      *sql.DB
	// other runs SQL in another process: the sqlite3 or psql command.
	other func(t testing.TB, sql string)
}

// sqliteDSN is what the package documents for SQLite: WAL, so the
// reader reads while the application writes, and a busy timeout, so
// writers wait for each other instead of failing.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"
}

func openSQLite(t testing.TB) *testDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &testDB{dialect: SQLite, db: db, other: func(t testing.TB, sql string) {
		t.Helper()
		cmd := exec.Command("sqlite3", "-cmd", ".timeout 5000", path, sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v: %s", err, out)
		}
	}}
	d.exec(t, `CREATE TABLE lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '')`)
	d.exec(t, `CREATE TABLE tasks (id INTEGER PRIMARY KEY, list_id INTEGER, title TEXT NOT NULL DEFAULT '', done BOOLEAN NOT NULL DEFAULT false)`)
	return d
}

func openPostgres(t testing.TB) *testDB {
	t.Helper()
	url := testenv.PostgresDB(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &testDB{dialect: Postgres, db: db, other: func(t testing.TB, sql string) {
		t.Helper()
		cmd := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql: %v: %s", err, out)
		}
	}}
	d.exec(t, `CREATE TABLE lists (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT '')`)
	d.exec(t, `CREATE TABLE tasks (id bigserial PRIMARY KEY, list_id bigint, title text NOT NULL DEFAULT '', done boolean NOT NULL DEFAULT false)`)
	return d
}

// forEachDB runs test on SQLite and on PostgreSQL.
func forEachDB(t *testing.T, test func(t *testing.T, d *testDB)) {
	t.Run("sqlite", func(t *testing.T) { test(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, openPostgres(t)) })
}

// q rewrites ? placeholders to $n on PostgreSQL.
func (d *testDB) q(query string) string {
	if d.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (d *testDB) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := d.db.Exec(d.q(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

var (
	tasks = Table{Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"}}
	lists = Table{Model: "todolist.List", Table: "lists", PK: "id"}
)

// begin opens a transaction, runs query in it and leaves it open; it is
// rolled back when the test ends unless committed first.
func (d *testDB) begin(t testing.TB, query string) *sql.Tx {
	t.Helper()
	tx, err := d.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	if _, err := tx.Exec(d.q(query)); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return tx
}

func (d *testDB) install(t testing.TB, tables ...Table) {
	t.Helper()
	if err := Install(context.Background(), d.db, d.dialect, tables...); err != nil {
		t.Fatal(err)
	}
}

// recorder is a live.Publisher that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	changes []live.Change
	batches int
	// fail, when positive, is how many more calls fail.
	fail    int
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Publish(ctx context.Context, changes []live.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return fmt.Errorf("recorder: failing on purpose")
	}
	r.changes = append(r.changes, changes...)
	r.batches++
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) snapshot() []live.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]live.Change(nil), r.changes...)
}

// wait returns the changes once there are at least n, failing the test
// if they do not come within 10 seconds.
func (r *recorder) wait(t testing.TB, n int) []live.Change {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("got %d changes, want %d", len(r.snapshot()), n)
		}
	}
}

// waitFor waits for a change of model with pk, returning every change
// before it and it: a marker write proves that earlier writes that must
// not appear did not.
func (r *recorder) waitFor(t testing.TB, model, pk string) []live.Change {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		got := r.snapshot()
		for i, c := range got {
			if c.Model == model && c.PK == pk {
				return got[:i+1]
			}
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("no change of %s %s among %d", model, pk, len(got))
		}
	}
}

// startReader runs a reader until the test ends or stop is called.
func startReader(t testing.TB, d *testDB, cfg Config) (r *Reader, stop func()) {
	t.Helper()
	if cfg.PollInterval == 0 && d.dialect == SQLite {
		cfg.PollInterval = 2 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := NewReader(d.db, d.dialect, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}
