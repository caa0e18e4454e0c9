// Package capturetest is the suite every dialect of package capture
// passes, on a real database (Run, and the benchmarks), and the helpers
// the dialects' own tests share.
package capturetest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
)

// A DB is one real database a test runs against, with the to-do schema:
// lists, and tasks that belong to a list.
type DB struct {
	Dialect capture.Dialect
	DB      *sql.DB
	// Other runs SQL in another process: the sqlite3 or psql command.
	Other func(t testing.TB, sql string)
	// Store names the tables the capture keeps, for the tests that edit
	// them by hand.
	Store Store
	// URL is the PostgreSQL database's.
	URL string
}

// A Store is where a capture keeps its records.
type Store struct {
	// Cursor is the table of the reader's cursor, whose row holds the
	// sequence's epoch.
	Cursor string
	// History is the table History reads.
	History string
	// Outbox says whether the triggers write an outbox, History, that a
	// test may write rows into.
	Outbox bool
}

// OutboxStore is the store of the outboxes of SQLite and PostgreSQL.
var OutboxStore = Store{Cursor: "restlive_cursor", History: "restlive_outbox", Outbox: true}

// Postgres says whether the database is PostgreSQL, whatever the mode
// of capture.
func (d *DB) Postgres() bool { return strings.HasPrefix(d.Dialect.String(), "postgres") }

// SQLiteDSN is what package capture documents for SQLite: WAL, so the
// reader reads while the application writes, and a busy timeout, so
// writers wait for each other instead of failing.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"
}

// OpenSQLite opens a new SQLite database in the test's directory.
func OpenSQLite(t testing.TB) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &DB{Dialect: capture.SQLite, DB: db, Store: OutboxStore, Other: func(t testing.TB, sql string) {
		t.Helper()
		cmd := exec.Command("sqlite3", "-cmd", ".timeout 5000", path, sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v: %s", err, out)
		}
	}}
	d.Exec(t, `CREATE TABLE lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '')`)
	d.Exec(t, `CREATE TABLE tasks (id INTEGER PRIMARY KEY, list_id INTEGER, title TEXT NOT NULL DEFAULT '', done BOOLEAN NOT NULL DEFAULT false)`)
	return d
}

// OpenPostgres creates a new PostgreSQL database (see
// testenv.PostgresDB), whose dialect is d: pgcapture.Dialect or one of
// pgwal's, which this package cannot import, since their tests import
// it.
func OpenPostgres(t testing.TB, d capture.Dialect) *DB {
	t.Helper()
	url := testenv.PostgresDB(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pg := &DB{Dialect: d, DB: db, URL: url, Store: OutboxStore, Other: func(t testing.TB, sql string) {
		t.Helper()
		cmd := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql: %v: %s", err, out)
		}
	}}
	pg.Exec(t, `CREATE TABLE lists (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT '')`)
	pg.Exec(t, `CREATE TABLE tasks (id bigserial PRIMARY KEY, list_id bigint, title text NOT NULL DEFAULT '', done boolean NOT NULL DEFAULT false)`)
	return pg
}

// Q rewrites ? placeholders to $n on PostgreSQL.
func (d *DB) Q(query string) string {
	if !d.Postgres() {
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

// Exec runs query, failing the test if it fails.
func (d *DB) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := d.DB.Exec(d.Q(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Begin opens a transaction, runs query in it and leaves it open; it is
// rolled back when the test ends unless committed first.
func (d *DB) Begin(t testing.TB, query string) *sql.Tx {
	t.Helper()
	tx, err := d.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	if _, err := tx.Exec(d.Q(query)); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return tx
}

// The tables of the to-do schema.
var (
	Tasks = capture.Table{Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"}}
	Lists = capture.Table{Model: "todolist.List", Table: "lists", PK: "id"}
)

// Install installs the outbox and the triggers of tables.
func (d *DB) Install(t testing.TB, tables ...capture.Table) {
	t.Helper()
	if err := capture.Install(context.Background(), d.DB, d.Dialect, tables...); err != nil {
		t.Fatal(err)
	}
}

// Quiet is a logger that drops everything.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Lead makes a session of the outbox reader, named owner, which the
// test drives by hand; it is closed when the test ends.
func (d *DB) Lead(t testing.TB, owner string) outbox.Session {
	t.Helper()
	s, err := d.Dialect.Backend(d.DB, outbox.Settings{Lease: 5 * time.Second, Logger: Quiet, Owner: owner}).
		Lead(context.Background())
	if err != nil || s == nil {
		t.Fatalf("lead: %v, %v", s, err)
	}
	t.Cleanup(s.Close)
	return s
}

// ReadAll reads and commits with s until it finds nothing, in batches of
// limit, and writes the cursor.
func ReadAll(t testing.TB, s outbox.Session, limit int) []outbox.Row {
	t.Helper()
	ctx := context.Background()
	var all []outbox.Row
	for {
		rows, err := s.Next(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		if err := s.Commit(ctx, rows[len(rows)-1].Seq); err != nil {
			t.Fatal(err)
		}
		all = append(all, rows...)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return all
}

// CountRows counts the rows of table.
func (d *DB) CountRows(t testing.TB, table string) (n int) {
	t.Helper()
	if err := d.DB.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A Recorder is a live.Publisher that keeps what it is given.
type Recorder struct {
	mu      sync.Mutex
	changes []live.Change
	// fail, when positive, is how many more calls fail.
	fail    int
	changed chan struct{}
}

func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{}, 1)} }

func (r *Recorder) Publish(ctx context.Context, changes []live.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return fmt.Errorf("recorder: failing on purpose")
	}
	r.changes = append(r.changes, changes...)
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// Fail makes the next n calls of Publish fail.
func (r *Recorder) Fail(n int) {
	r.mu.Lock()
	r.fail = n
	r.mu.Unlock()
}

// Snapshot returns the changes so far.
func (r *Recorder) Snapshot() []live.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]live.Change(nil), r.changes...)
}

// Wait returns the changes once there are at least n, failing the test
// if they do not come within 10 seconds.
func (r *Recorder) Wait(t testing.TB, n int) []live.Change {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if got := r.Snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("got %d changes, want %d", len(r.Snapshot()), n)
		}
	}
}

// WaitFor waits for a change of model with pk, returning every change
// before it and it: a marker write proves that earlier writes that must
// not appear did not.
func (r *Recorder) WaitFor(t testing.TB, model, pk string) []live.Change {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		got := r.Snapshot()
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

// StartReader runs a reader until the test ends or stop is called.
func StartReader(t testing.TB, d *DB, cfg capture.Config) (r *capture.Reader, stop func()) {
	t.Helper()
	if cfg.PollInterval == 0 && !d.Postgres() {
		cfg.PollInterval = 2 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := capture.NewReader(d.DB, d.Dialect, cfg)
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

// NewHistory returns the database's capture.History.
func (d *DB) NewHistory(t testing.TB) *capture.History {
	t.Helper()
	h, err := capture.NewHistory(d.DB, d.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// WaitHead waits until the cursor says seq was published: the reader
// writes it a moment after it publishes.
func WaitHead(t testing.TB, h *capture.History, seq uint64) live.Position {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		head, err := h.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if head.Seq >= seq {
			return head
		}
		if time.Now().After(deadline) {
			t.Fatalf("head is %d, want %d", head.Seq, seq)
		}
		time.Sleep(time.Millisecond)
	}
}
