package capture

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

func m(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// sameChange compares everything but Seq.
func sameChange(a, b live.Change) bool {
	return a.Model == b.Model && a.PK == b.PK && a.Op == b.Op &&
		(a.Old == nil) == (b.Old == nil) && maps.Equal(a.Old, b.Old) &&
		(a.New == nil) == (b.New == nil) && maps.Equal(a.New, b.New)
}

func checkChanges(t *testing.T, got, want []live.Change) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d changes, want %d", len(got), len(want))
	}
	errs := 0
	for i := range min(len(got), len(want)) {
		if errs > 5 {
			t.Fatal("too many errors")
		}
		if !sameChange(got[i], want[i]) {
			errs++
			t.Errorf("change %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
		// Seqs increase; by one, but on SQLite a replaced row and its
		// insert are one change, with the seq of the second.
		if i > 0 && (got[i].Seq <= got[i-1].Seq || got[i].Seq > got[i-1].Seq+2) {
			errs++
			t.Errorf("change %d: seq %d follows %d", i, got[i].Seq, got[i-1].Seq)
		}
	}
}

func task(op live.Op, pk string, old, new map[string]string) live.Change {
	return live.Change{Model: "todolist.Task", PK: pk, Op: op, Old: old, New: new}
}

// insertsInto14 is what inserting the tasks from to to into list 14
// publishes.
func insertsInto14(from, to int) []live.Change {
	var out []live.Change
	for i := from; i <= to; i++ {
		out = append(out, task(live.OpInsert, strconv.Itoa(i), nil, m("list_id", "14")))
	}
	return out
}

// TestCapture is the suite every database passes.
func TestCapture(t *testing.T) {
	tests := []struct {
		name string
		// write makes the writes through d; the changes it must produce,
		// in order, follow.
		write func(t *testing.T, d *testDB)
		want  []live.Change
	}{
		{
			name: "insert update delete",
			write: func(t *testing.T, d *testDB) {
				d.exec(t, `INSERT INTO tasks (id, list_id, title) VALUES (1, 14, 'a')`)
				d.exec(t, `UPDATE tasks SET title = 'b' WHERE id = 1`)
				d.exec(t, `DELETE FROM tasks WHERE id = 1`)
			},
			want: []live.Change{
				task(live.OpInsert, "1", nil, m("list_id", "14")),
				task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "14")),
				task(live.OpDelete, "1", m("list_id", "14"), nil),
			},
		},
		{
			name: "move between lists",
			write: func(t *testing.T, d *testDB) {
				d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 14)`)
				d.exec(t, `UPDATE tasks SET list_id = 15 WHERE id = 7`)
			},
			want: []live.Change{
				task(live.OpInsert, "7", nil, m("list_id", "14")),
				task(live.OpUpdate, "7", m("list_id", "14"), m("list_id", "15")),
			},
		},
		{
			// SQLite's INSERT OR REPLACE deletes the old row without a delete
			// trigger; PostgreSQL's upsert is an update.
			name: "replace moves between lists",
			write: func(t *testing.T, d *testDB) {
				d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 14)`)
				if d.dialect == SQLite {
					d.exec(t, `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (7, 15)`)
				} else {
					d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 15) ON CONFLICT (id) DO UPDATE SET list_id = excluded.list_id`)
				}
			},
			want: []live.Change{
				task(live.OpInsert, "7", nil, m("list_id", "14")),
				task(live.OpUpdate, "7", m("list_id", "14"), m("list_id", "15")),
			},
		},
		{
			name: "null group value is left out",
			write: func(t *testing.T, d *testDB) {
				d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, NULL)`)
				d.exec(t, `UPDATE tasks SET list_id = 14 WHERE id = 3`)
			},
			want: []live.Change{
				task(live.OpInsert, "3", nil, m()),
				task(live.OpUpdate, "3", m(), m("list_id", "14")),
			},
		},
		{
			name: "bulk update by raw SQL",
			write: func(t *testing.T, d *testDB) {
				d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14), (2, 15), (3, 14)`)
				d.exec(t, `UPDATE tasks SET done = true WHERE list_id = 14`)
			},
			want: []live.Change{
				task(live.OpInsert, "1", nil, m("list_id", "14")),
				task(live.OpInsert, "2", nil, m("list_id", "15")),
				task(live.OpInsert, "3", nil, m("list_id", "14")),
				task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "14")),
				task(live.OpUpdate, "3", m("list_id", "14"), m("list_id", "14")),
			},
		},
		{
			name: "write by another process",
			write: func(t *testing.T, d *testDB) {
				d.other(t, `INSERT INTO tasks (id, list_id) VALUES (5, 14); UPDATE tasks SET list_id = 16 WHERE id = 5;`)
			},
			want: []live.Change{
				task(live.OpInsert, "5", nil, m("list_id", "14")),
				task(live.OpUpdate, "5", m("list_id", "14"), m("list_id", "16")),
			},
		},
		{
			name: "primary key change is a delete and an insert",
			write: func(t *testing.T, d *testDB) {
				d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
				d.exec(t, `UPDATE tasks SET id = 2, list_id = 15 WHERE id = 1`)
			},
			want: []live.Change{
				task(live.OpInsert, "1", nil, m("list_id", "14")),
				task(live.OpDelete, "1", m("list_id", "14"), nil),
				task(live.OpInsert, "2", nil, m("list_id", "15")),
			},
		},
		{
			name: "rollback gives nothing",
			write: func(t *testing.T, d *testDB) {
				tx, err := d.db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(`INSERT INTO tasks (id, list_id) VALUES (1, 14)`); err != nil {
					t.Fatal(err)
				}
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
			},
			want: []live.Change{task(live.OpInsert, "2", nil, m("list_id", "15"))},
		},
		{
			name: "transaction of three in order",
			write: func(t *testing.T, d *testDB) {
				tx, err := d.db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range []string{
					`INSERT INTO tasks (id, list_id) VALUES (9, 14)`,
					`INSERT INTO tasks (id, list_id) VALUES (8, 14)`,
					`UPDATE tasks SET list_id = 15 WHERE id = 9`,
				} {
					if _, err := tx.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			},
			want: []live.Change{
				task(live.OpInsert, "9", nil, m("list_id", "14")),
				task(live.OpInsert, "8", nil, m("list_id", "14")),
				task(live.OpUpdate, "9", m("list_id", "14"), m("list_id", "15")),
			},
		},
	}
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks, lists)
		rec := newRecorder()
		startReader(t, d, Config{Publisher: rec})
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Clean up, and wait for the clean-up's changes to pass.
				d.exec(t, `DELETE FROM tasks`)
				d.exec(t, `INSERT INTO lists (id) VALUES (?)`, 2000+i)
				before := len(rec.waitFor(t, "todolist.List", strconv.Itoa(2000+i)))
				tt.write(t, d)
				// A marker write: every change of the test comes before it.
				marker := strconv.Itoa(1000 + i)
				d.exec(t, `INSERT INTO lists (id) VALUES (?)`, 1000+i)
				got := rec.waitFor(t, "todolist.List", marker)[before:]
				want := append(tt.want, live.Change{Model: "todolist.List", PK: marker, Op: live.OpInsert, New: m()})
				checkChanges(t, got, want)
			})
		}
	})
}

func TestTransactionPublishedAfterCommit(t *testing.T) {
	// On SQLite a second writer waits for the first, so only PostgreSQL
	// can show that a commit elsewhere does not release an open
	// transaction's writes.
	d := openPostgres(t)
	d.install(t, tasks, lists)
	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec})
	tx, err := d.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		`INSERT INTO tasks (id, list_id) VALUES (1, 14)`,
		`INSERT INTO tasks (id, list_id) VALUES (2, 14)`,
		`INSERT INTO tasks (id, list_id) VALUES (3, 14)`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	d.exec(t, `INSERT INTO lists (id) VALUES (1)`)
	if got := rec.waitFor(t, "todolist.List", "1"); len(got) != 1 {
		t.Fatalf("before commit: %+v", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 4)
	checkChanges(t, got[1:], []live.Change{
		task(live.OpInsert, "1", nil, m("list_id", "14")),
		task(live.OpInsert, "2", nil, m("list_id", "14")),
		task(live.OpInsert, "3", nil, m("list_id", "14")),
	})
}

// TestOutOfOrderCommit commits two transactions in the opposite order of
// their outbox ids, and of their transaction ids too: a reader of id >
// cursor, or of rows older than the snapshot's xmin, would lose one.
func TestOutOfOrderCommit(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks, lists)
	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec})
	ctx := context.Background()

	t1, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Rollback()
	t2, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer t2.Rollback()
	// t1 takes its transaction id first, by writing an uncaptured table.
	if _, err := t1.Exec(`CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// t2 takes outbox id n, t1 then n+1.
	if _, err := t2.Exec(`INSERT INTO tasks (id, list_id) VALUES (2, 14)`); err != nil {
		t.Fatal(err)
	}
	if _, err := t1.Exec(`INSERT INTO tasks (id, list_id) VALUES (1, 14)`); err != nil {
		t.Fatal(err)
	}
	// t1 commits first: its row, the higher id, is published...
	if err := t1.Commit(); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 1)
	checkChanges(t, got, []live.Change{task(live.OpInsert, "1", nil, m("list_id", "14"))})
	// ...and t2's lower id is not lost when it commits after.
	if err := t2.Commit(); err != nil {
		t.Fatal(err)
	}
	got = rec.wait(t, 2)
	checkChanges(t, got, []live.Change{
		task(live.OpInsert, "1", nil, m("list_id", "14")),
		task(live.OpInsert, "2", nil, m("list_id", "14")),
	})
	// A long-open transaction does not hold the others back.
	d.begin(t, `INSERT INTO tasks (id, list_id) VALUES (10, 14)`)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (11, 14)`)
	rec.waitFor(t, "todolist.Task", "11")
}

// TestRestart stops the reader, commits 100 writes, and starts another:
// all 100 are published, in order, none twice.
func TestRestart(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		rec := newRecorder()
		_, stop := startReader(t, d, Config{Publisher: rec})
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
		rec.wait(t, 1)
		stop()
		for i := 2; i <= 101; i++ {
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, ?)`, i, 14+i%2)
		}
		startReader(t, d, Config{Publisher: rec, BatchSize: 30})
		rec.wait(t, 101)
		want := []live.Change{task(live.OpInsert, "1", nil, m("list_id", "14"))}
		for i := 2; i <= 101; i++ {
			want = append(want, task(live.OpInsert, strconv.Itoa(i), nil, m("list_id", strconv.Itoa(14+i%2))))
		}
		// A write after the catch-up proves nothing more was coming.
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (102, 14)`)
		got := rec.waitFor(t, "todolist.Task", "102")
		checkChanges(t, got, append(want, task(live.OpInsert, "102", nil, m("list_id", "14"))))
	})
}

// TestPublishFailure: a failing Publisher delays changes, loses none and
// repeats none.
func TestPublishFailure(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		rec := newRecorder()
		rec.fail = 2
		startReader(t, d, Config{Publisher: rec, Lease: 200 * time.Millisecond})
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
		got := rec.waitFor(t, "todolist.Task", "2")
		checkChanges(t, got, []live.Change{
			task(live.OpInsert, "1", nil, m("list_id", "14")),
			task(live.OpInsert, "2", nil, m("list_id", "15")),
		})
	})
}

// TestPublishFailureKeepsTheLead: a reader whose Publisher fails for a
// moment (a broker restarting) keeps reading the outbox rather than hand
// it to a standby; one whose Publisher keeps failing for a lease hands it
// over, so a process that can publish does.
func TestPublishFailureKeepsTheLead(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		lead, standby := newRecorder(), newRecorder()
		const lease = time.Second
		startReader(t, d, Config{Publisher: lead, Lease: lease})
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
		lead.wait(t, 1)
		startReader(t, d, Config{Publisher: standby, Lease: lease})

		failFor := func(n int) {
			lead.mu.Lock()
			lead.fail = n
			lead.mu.Unlock()
		}
		failFor(2) // about 150ms of retries
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
		lead.waitFor(t, "todolist.Task", "3")
		if got := standby.snapshot(); len(got) > 0 {
			t.Fatalf("the standby took over during a short failure and published %+v", got)
		}

		failFor(1 << 30)
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)
		standby.waitFor(t, "todolist.Task", "4")
	})
}

// TestBoolFields: a boolean column reads true and false on both
// databases, though SQLite stores 0 and 1.
func TestBoolFields(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, Table{Model: "todolist.Task", Table: "tasks", PK: "id",
			Fields: []string{"list_id", "done"}, BoolFields: []string{"done"}})
		rec := newRecorder()
		startReader(t, d, Config{Publisher: rec})
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
		d.exec(t, `UPDATE tasks SET done = true WHERE id = 1`)
		d.exec(t, `UPDATE tasks SET list_id = NULL WHERE id = 1`)
		checkChanges(t, rec.wait(t, 3), []live.Change{
			task(live.OpInsert, "1", nil, m("list_id", "14", "done", "false")),
			task(live.OpUpdate, "1", m("list_id", "14", "done", "false"), m("list_id", "14", "done", "true")),
			task(live.OpUpdate, "1", m("list_id", "14", "done", "true"), m("done", "true")),
		})
	})
}

// TestInstall: Install is idempotent, replaces triggers whose fields
// changed, and Remove stops the capture of a table.
func TestInstall(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks, lists)
		d.install(t, tasks, lists)
		rec := newRecorder()
		startReader(t, d, Config{Publisher: rec})
		d.exec(t, `INSERT INTO tasks (id, list_id, title) VALUES (1, 14, 'a')`)

		wider := tasks
		wider.Fields = []string{"list_id", "title", "done"}
		d.install(t, wider)
		d.exec(t, `UPDATE tasks SET title = 'b', done = true WHERE id = 1`)

		if err := Remove(context.Background(), d.db, d.dialect, "tasks"); err != nil {
			t.Fatal(err)
		}
		if err := Remove(context.Background(), d.db, d.dialect, "tasks"); err != nil {
			t.Fatal(err)
		}
		d.exec(t, `UPDATE tasks SET title = 'c' WHERE id = 1`)
		d.exec(t, `INSERT INTO lists (id) VALUES (1)`)

		// SQLite has no boolean type: booleans are stored, and reported,
		// as 0 and 1.
		undone, done := "false", "true"
		if d.dialect == SQLite {
			undone, done = "0", "1"
		}
		got := rec.waitFor(t, "todolist.List", "1")
		checkChanges(t, got, []live.Change{
			task(live.OpInsert, "1", nil, m("list_id", "14")),
			task(live.OpUpdate, "1", m("list_id", "14", "title", "a", "done", undone), m("list_id", "14", "title", "b", "done", done)),
			{Model: "todolist.List", PK: "1", Op: live.OpInsert, New: m()},
		})
	})
}

func TestInstallRejects(t *testing.T) {
	d := openSQLite(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		d    Dialect
		t    Table
	}{
		{"dialect", "mysql", tasks},
		{"no model", SQLite, Table{Table: "tasks", PK: "id"}},
		{"quote in table", SQLite, Table{Model: "a.B", Table: `tasks"`, PK: "id"}},
		{"quote in field", SQLite, Table{Model: "a.B", Table: "tasks", PK: "id", Fields: []string{`x"y`}}},
		{"no such table", SQLite, Table{Model: "a.B", Table: "nope", PK: "id"}},
		{"boolean not a field", SQLite, Table{Model: "a.B", Table: "tasks", PK: "id", BoolFields: []string{"done"}}},
	} {
		if err := Install(ctx, d.db, tt.d, tt.t); err == nil {
			t.Errorf("%s: Install succeeded", tt.name)
		}
	}
	// A failed Install changed nothing.
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name LIKE 'restlive%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d restlive objects after failed installs", n)
	}
}

func TestRunWithoutInstall(t *testing.T) {
	d := openSQLite(t)
	r, err := NewReader(d.db, SQLite, Config{Publisher: newRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("Run succeeded without an outbox")
	}
}

// TestOneReader runs two readers on one database: only one publishes;
// when it stops the other takes over, and no change is lost or repeated.
func TestOneReader(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		rec := newRecorder()
		cfg := Config{Publisher: rec, Lease: 500 * time.Millisecond}
		_, stop1 := startReader(t, d, cfg)
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
		rec.wait(t, 1)
		startReader(t, d, cfg)
		for i := 2; i <= 20; i++ {
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
			if i == 10 {
				stop1()
			}
		}
		got := rec.waitFor(t, "todolist.Task", "20")
		checkChanges(t, got, insertsInto14(1, 20))
	})
}

// TestLeaseFencing: on SQLite a reader whose lease was taken over cannot
// move the cursor.
func TestLeaseFencing(t *testing.T) {
	d := openSQLite(t)
	d.install(t)
	ctx := context.Background()
	cfg := Config{Lease: time.Minute}
	cfg.setDefaults(SQLite)
	a := &sqliteBackend{db: d.db, cfg: &cfg, owner: "a"}
	b := &sqliteBackend{db: d.db, cfg: &cfg, owner: "b"}
	sa, err := a.lead(ctx)
	if err != nil || sa == nil {
		t.Fatalf("a.lead: %v, %v", sa, err)
	}
	if sb, err := b.lead(ctx); err != nil || sb != nil {
		t.Fatalf("b.lead while a holds the lease: %v, %v", sb, err)
	}
	// The lease expires (a paused too long): b takes over.
	d.exec(t, `UPDATE restlive_cursor SET lease_until = 0`)
	sb, err := b.lead(ctx)
	if err != nil || sb == nil {
		t.Fatalf("b.lead after expiry: %v, %v", sb, err)
	}
	if err := sa.commit(ctx, 5); err != errLostLead {
		t.Errorf("a.commit after losing the lease: %v", err)
	}
	if err := sb.commit(ctx, 5); err != nil {
		t.Errorf("b.commit: %v", err)
	}
}

// TestSQLitePrune: rows go by age and number, the oldest first, never
// one not yet published.
func TestSQLitePrune(t *testing.T) {
	d := openSQLite(t)
	d.install(t, tasks)
	ctx := context.Background()
	for i := 1; i <= 50; i++ {
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	cfg := Config{Publisher: newRecorder()}
	cfg.setDefaults(SQLite)
	s, err := (&sqliteBackend{db: d.db, cfg: &cfg, owner: "test"}).lead(ctx)
	if err != nil || s == nil {
		t.Fatalf("lead: %v, %v", s, err)
	}
	defer s.close()
	// Read all 50, publish the first 30.
	rows, err := s.next(ctx, 100)
	if err != nil || len(rows) != 50 {
		t.Fatalf("next: %d rows, %v", len(rows), err)
	}
	if err := s.commit(ctx, rows[29].seq); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing is old or beyond 1,000 rows.
	if n, err := s.prune(ctx, time.Hour, 1000); err != nil || n != 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	// Keep 25 rows: the oldest 25 go.
	if n, err := s.prune(ctx, time.Hour, 25); err != nil || n != 25 {
		t.Fatalf("prune to 25 rows: %d, %v", n, err)
	}
	// Everything is old: the other 5 published go, never the 20
	// unpublished, whatever the settings.
	d.exec(t, `UPDATE restlive_outbox SET created_at = unixepoch() - 7200`)
	if n, err := s.prune(ctx, time.Hour, 1000); err != nil || n != 5 {
		t.Fatalf("prune by age: %d, %v", n, err)
	}
	if n, err := s.prune(ctx, time.Nanosecond, 1); err != nil || n != 0 {
		t.Fatalf("prune of unpublished rows: %d, %v", n, err)
	}
	if n := countRows(t, d, "restlive_outbox"); n != 20 {
		t.Fatalf("%d rows left, want the 20 unpublished", n)
	}
}

func countRows(t *testing.T, d *testDB, table string) (n int) {
	t.Helper()
	if err := d.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// readAll reads and publishes with s until it finds nothing, in batches
// of limit, and writes the cursor.
func readAll(t *testing.T, s session, limit int) []row {
	t.Helper()
	ctx := context.Background()
	var all []row
	for {
		rows, err := s.next(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		if err := s.commit(ctx, rows[len(rows)-1].seq); err != nil {
			t.Fatal(err)
		}
		all = append(all, rows...)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	return all
}

// TestPostgresPrune: rows go by whole reads, by age and number, the
// oldest first; the log's records go with them; the newest read and the
// rows not yet published stay, whatever the settings.
func TestPostgresPrune(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	ctx := context.Background()
	cfg := Config{Publisher: newRecorder()}
	cfg.setDefaults(Postgres)
	s, err := (&postgresBackend{db: d.db, cfg: &cfg, owner: "test"}).lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	// Four reads of ten rows, the first split by the batch size.
	for r := range 4 {
		for i := 1; i <= 10; i++ {
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, 10*r+i)
		}
		if got := readAll(t, s, 4); len(got) != 10 {
			t.Fatalf("read %d: %d rows", r, len(got))
		}
	}
	prune := func(retention time.Duration, maxRows int64, want int64) {
		t.Helper()
		if n, err := s.prune(ctx, retention, maxRows); err != nil || n != want {
			t.Fatalf("prune(%v, %d): %d rows, %v; want %d", retention, maxRows, n, err, want)
		}
	}
	left := func(rows, reads int) {
		t.Helper()
		if n, m := countRows(t, d, "restlive_outbox"), countRows(t, d, "restlive_reads"); n != rows || m != reads {
			t.Fatalf("%d rows and %d reads left, want %d and %d", n, m, rows, reads)
		}
	}
	left(40, 4)
	prune(time.Hour, 1000, 0) // nothing old or beyond 1,000 rows
	// At most 25 rows: the reads from seq 21 hold 20.
	prune(time.Hour, 25, 20)
	left(20, 2)
	// The third read began two hours ago: its rows are older still, but
	// only the fourth read's beginning proves that of all of them.
	d.exec(t, `UPDATE restlive_reads SET read_at = now() - interval '2 hours' WHERE first_seq = 21`)
	prune(time.Hour, 1000, 10)
	left(10, 1)
	// Every read old: the newest stays, with its rows, and so do rows
	// not yet published.
	d.exec(t, `UPDATE restlive_reads SET read_at = now() - interval '2 hours'`)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (41, 14)`)
	prune(time.Nanosecond, 1, 0)
	left(11, 1)
}

// TestPostgresPruneKeepsLateCommits: a transaction in progress when a
// read began commits later; its row belongs to a later read, though its
// xid is older than rows pruned before it. Pruning keeps it, and History
// still answers with it.
func TestPostgresPruneKeepsLateCommits(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	ctx := context.Background()
	cfg := Config{Publisher: newRecorder()}
	cfg.setDefaults(Postgres)
	s, err := (&postgresBackend{db: d.db, cfg: &cfg, owner: "test"}).lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	late := d.begin(t, `INSERT INTO tasks (id, list_id) VALUES (100, 14)`)
	var published []live.Change
	read := func(ids ...int) {
		t.Helper()
		for _, id := range ids {
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, id)
		}
		published = append(published, (&Reader{cfg: cfg}).changes(readAll(t, s, 100))...)
	}
	read(1, 2, 3) // seq 1-3
	read(4, 5, 6) // 4-6, after a done snapshot that has late in progress
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	read()        // 7: 100
	read(7, 8, 9) // 8-10
	// At most 8 rows: the cut is the read that gave 4, whose done sees
	// 1-3 and not 100.
	if n, err := s.prune(ctx, time.Hour, 8); err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want 3", n, err)
	}
	h := newHistory(t, d)
	head := waitHead(t, h, 10)
	got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: 3}, []string{"todolist.Task"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameChanges(got, of(published, 3, "todolist.Task")); err != nil {
		t.Fatal(err)
	}
	if got[3].PK != "100" || got[3].Seq != 7 {
		t.Errorf("change 3 is %s with seq %d, want 100 with seq 7", got[3].PK, got[3].Seq)
	}
}

func TestDecodeFields(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want map[string]string
	}{
		{`{"list_id": 14}`, m("list_id", "14")},
		{`{"a": 2.0, "b": 2.5, "c": "x", "d": true, "e": null}`, m("a", "2", "b", "2.5", "c", "x", "d", "true")},
		{`{"big": 9007199254740993}`, m("big", "9007199254740993")},
		{`{}`, m()},
	} {
		got, err := decodeFields([]byte(tt.in))
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("decodeFields(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if got, err := decodeFields(nil); got != nil || err != nil {
		t.Errorf("decodeFields(nil) = %v, %v", got, err)
	}
	if _, err := decodeFields([]byte(`{"a": [1]}`)); err == nil {
		t.Error("decodeFields accepted an array")
	}
}

// TestPostgresReaderKilled ends the reader's database session under it:
// it reconnects, takes the lock again, and loses and repeats nothing.
func TestPostgresReaderKilled(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec, Lease: 200 * time.Millisecond})
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.wait(t, 1)
	var killed bool
	if err := d.db.QueryRow(`SELECT bool_or(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the reader's session: %v, %v", killed, err)
	}
	for i := 2; i <= 10; i++ {
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	got := rec.waitFor(t, "todolist.Task", "10")
	checkChanges(t, got, insertsInto14(1, 10))
}

// TestPostgresListensAgainWhenIdle: the reader stops listening while
// writes keep coming and reads every BatchDelay instead; once they stop
// it listens again, so a write after a burst is published at once, not
// at the next poll, which here is an hour away.
func TestPostgresListensAgainWhenIdle(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	rec := newRecorder()
	// listeningAfter is how many changes had been published when the
	// reader last started waiting for a notification.
	var listeningAfter atomic.Int64
	listening := make(chan struct{}, 1)
	startReader(t, d, Config{Publisher: rec, PollInterval: time.Hour, testHookListening: func() {
		listeningAfter.Store(int64(len(rec.snapshot())))
		select {
		case listening <- struct{}{}:
		default:
		}
	}})
	// idle waits for the reader to listen after publishing n changes.
	idle := func(n int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for listeningAfter.Load() < int64(n) {
			select {
			case <-listening:
			case <-deadline:
				t.Fatalf("the reader never went back to listening after %d changes", n)
			}
		}
	}
	id := 0
	for range 3 {
		idle(id)
		// A burst the reader reads in batches without listening...
		for range 50 {
			id++
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, id)
		}
		rec.waitFor(t, "todolist.Task", strconv.Itoa(id))
		// ...then, once it listens again, one write it must be woken for.
		idle(id)
		id++
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, id)
		rec.waitFor(t, "todolist.Task", strconv.Itoa(id))
	}
	checkChanges(t, rec.snapshot(), insertsInto14(1, id))
}

// TestPostgresTakeoverReadsTheSameRead: a reader that read and published
// changes, then died before writing how far it got, is followed by one
// that publishes the same changes with the same seq, even when a
// transaction with an older id committed in between; that transaction's
// change comes after them.
func TestPostgresTakeoverReadsTheSameRead(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	long := d.begin(t, `INSERT INTO tasks (id, list_id) VALUES (10, 14)`)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)

	cfg := Config{Publisher: newRecorder()}
	cfg.setDefaults(Postgres)
	read := func(s session) []live.Change {
		t.Helper()
		rows, err := s.next(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		r := Reader{cfg: cfg}
		return r.changes(rows)
	}
	want := func(from uint64, pks ...string) []live.Change {
		var out []live.Change
		for i, pk := range pks {
			c := task(live.OpInsert, pk, nil, m("list_id", "14"))
			c.Seq = from + uint64(i)
			out = append(out, c)
		}
		return out
	}
	check := func(got, want []live.Change) {
		t.Helper()
		checkChanges(t, got, want)
		if len(got) > 0 && len(want) > 0 && got[0].Seq != want[0].Seq {
			t.Errorf("first seq %d, want %d", got[0].Seq, want[0].Seq)
		}
	}

	first, err := (&postgresBackend{db: d.db, cfg: &cfg}).lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(read(first), want(1, "1", "2", "3", "4"))
	first.close() // dies without writing that it published them

	if err := long.Commit(); err != nil {
		t.Fatal(err)
	}
	second, err := (&postgresBackend{db: d.db, cfg: &cfg}).lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.close()
	got := read(second)
	check(got, want(1, "1", "2", "3", "4"))
	if err := second.commit(ctx, got[len(got)-1].Seq); err != nil {
		t.Fatal(err)
	}
	check(read(second), want(5, "10"))

	// History gives the changes the seqs they were published with, once
	// the cursor says they were.
	if err := second.commit(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := second.flush(ctx); err != nil {
		t.Fatal(err)
	}
	h := newHistory(t, d)
	head := waitHead(t, h, 5)
	for from := range uint64(6) {
		got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: from}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameChanges(got, of(append(want(1, "1", "2", "3", "4"), want(5, "10")...), from, "todolist.Task")); err != nil {
			t.Errorf("since %d: %v", from, err)
		}
	}
}

// TestPostgresInstallReplacesOldOutbox: an outbox of the layout before
// reads by snapshot is replaced when everything in it is published, and
// stops Install with an error that says what to do when not.
func TestPostgresInstallReplacesOldOutbox(t *testing.T) {
	d := openPostgres(t)
	d.exec(t, `CREATE TABLE restlive_outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, seq bigint,
		created_at timestamptz NOT NULL DEFAULT now(), model text NOT NULL, pk text NOT NULL, op text NOT NULL, old jsonb, new jsonb)`)
	d.exec(t, `CREATE TABLE restlive_cursor (name text PRIMARY KEY, sequenced bigint NOT NULL DEFAULT 0, published bigint NOT NULL DEFAULT 0)`)
	d.exec(t, `INSERT INTO restlive_cursor (name, sequenced, published) VALUES ('default', 1, 1)`)
	d.exec(t, `INSERT INTO restlive_outbox (seq, model, pk, op) VALUES (1, 'todolist.Task', '1', 'I'), (NULL, 'todolist.Task', '2', 'I')`)
	err := Install(context.Background(), d.db, Postgres, tasks)
	if err == nil || !strings.Contains(err.Error(), "has not published") {
		t.Fatalf("install over an outbox with a change to publish: %v", err)
	}
	d.exec(t, `UPDATE restlive_outbox SET seq = 2 WHERE seq IS NULL`)
	d.exec(t, `UPDATE restlive_cursor SET sequenced = 2, published = 2`)
	d.install(t, tasks)

	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec})
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
	checkChanges(t, rec.wait(t, 1), []live.Change{task(live.OpInsert, "3", nil, m("list_id", "14"))})
}

// TestPostgresTransactionOrder: transactions are ordered by their ids as
// numbers, also where they gain a digit (xids do on a young cluster), in
// reading and in pruning. The rows are written by hand with the ids of
// long-finished transactions.
func TestPostgresTransactionOrder(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	for _, xid := range []string{"100", "9", "99", "10"} {
		d.exec(t, `INSERT INTO restlive_outbox (xid, model, pk, op, new) VALUES (?::xid8, 'todolist.Task', ?, 'I', '{"list_id": 14}')`, xid, xid)
	}
	rec := newRecorder()
	_, stop := startReader(t, d, Config{Publisher: rec, BatchSize: 3})
	var want []live.Change
	for _, pk := range []string{"9", "10", "99", "100"} {
		want = append(want, task(live.OpInsert, pk, nil, m("list_id", "14")))
	}
	checkChanges(t, rec.wait(t, 4), want)
	stop() // writes the cursor

	h, err := NewHistory(d.db, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	head, err := h.Head(ctx)
	if err != nil || head.Seq != 4 {
		t.Fatalf("head %+v, %v; want seq 4", head, err)
	}
	got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: 1}, []string{"todolist.Task"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkChanges(t, got, want[1:])
	if len(got) > 0 && got[0].Seq != 2 {
		t.Errorf("since 1: first seq %d, want 2", got[0].Seq)
	}

	// A read after them; pruning to one row deletes the four rows its
	// done snapshot sees, whose xids are far below its xmax.
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1000, 14)`)
	cfg := Config{Publisher: rec}
	cfg.setDefaults(Postgres)
	s, err := (&postgresBackend{db: d.db, cfg: &cfg}).lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if rows := readAll(t, s, 100); len(rows) != 1 || rows[0].seq != 5 {
		t.Fatalf("read %+v, want seq 5", rows)
	}
	if n, err := s.prune(ctx, time.Hour, 1); err != nil || n != 4 {
		t.Errorf("pruned %d (%v), want 4", n, err)
	}
}

// TestPostgresOldReaderCannotMoveCursor: a reader whose session died
// while another took over cannot write the cursor through another
// connection afterwards; if it could, it would move the cursor to where
// it was, behind the new reader, whose seq values the next reader would
// then give to other changes.
func TestPostgresOldReaderCannotMoveCursor(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	cfg := Config{Publisher: newRecorder()}
	cfg.setDefaults(Postgres)
	lead := func(owner string) *postgresSession {
		t.Helper()
		s, err := (&postgresBackend{db: d.db, cfg: &cfg, owner: owner}).lead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.close)
		return s.(*postgresSession)
	}
	read := func(s *postgresSession, limit int) []row {
		t.Helper()
		rows, err := s.next(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.commit(ctx, rows[len(rows)-1].seq); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	a := lead("a")
	read(a, 2)
	read(a, 2) // published 1-4; the cursor says 2
	var pid int
	if err := a.conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `SELECT pg_terminate_backend(?)`, pid)

	b := lead("b")
	if got := read(b, 100); got[0].seq != 3 || got[len(got)-1].seq != 6 {
		t.Fatalf("b read seq %d to %d, want 3 to 6", got[0].seq, got[len(got)-1].seq)
	}
	if err := a.flush(ctx); !errors.Is(err, errLostLead) {
		t.Fatalf("a's flush after b took over: %v, want errLostLead", err)
	}
	if err := b.flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.close()
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 14)`)
	c := lead("c")
	if got := read(c, 100); got[0].seq != 7 || got[0].pk != "7" {
		t.Fatalf("the next change is pk %s with seq %d, want pk 7 with seq 7", got[0].pk, got[0].seq)
	}
}

// TestPostgresCursorAhead: a cursor ahead of the server's transaction ids
// (a database restored into another cluster) stops the reader with an
// error that says what to do, rather than taking every change for
// published.
func TestPostgresCursorAhead(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	d.exec(t, `UPDATE restlive_cursor SET done = (x || ':' || x || ':')::pg_snapshot
		FROM (SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text AS x) ahead`)
	cfg := Config{Publisher: newRecorder()}
	cfg.setDefaults(Postgres)
	s, err := (&postgresBackend{db: d.db, cfg: &cfg}).lead(context.Background())
	if err == nil {
		s.close()
		t.Fatal("lead accepted a cursor ahead of the server")
	}
	if !strings.Contains(err.Error(), "restored into another cluster") {
		t.Fatalf("lead: %v", err)
	}
}

// TestBadOutboxRow: a row written by hand with an unknown op is published
// as an update whose fields are unknown, and the reader goes on.
func TestBadOutboxRow(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		rec := newRecorder()
		startReader(t, d, Config{Publisher: rec, Logger: quiet})
		d.exec(t, `INSERT INTO restlive_outbox (model, pk, op, new) VALUES ('todolist.Task', '1', '', '{"list_id": 14}')`)
		d.exec(t, `INSERT INTO restlive_outbox (model, pk, op, new) VALUES ('todolist.Task', '2', 'X', '[1]')`)
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
		checkChanges(t, rec.wait(t, 3), []live.Change{
			task(live.OpUpdate, "1", nil, nil),
			task(live.OpUpdate, "2", nil, nil),
			task(live.OpInsert, "3", nil, m("list_id", "14")),
		})
	})
}

// TestSQLiteOutboxEmptied: an operator's DELETE FROM restlive_outbox
// keeps the newest row, so the seq goes on from it and the writes after
// are published. Were the table emptied, the next rowid would be 1, below
// the cursor, and they would be skipped.
func TestSQLiteOutboxEmptied(t *testing.T) {
	d := openSQLite(t)
	d.install(t, tasks)
	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec})
	for i := 1; i <= 3; i++ {
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	rec.wait(t, 3)
	d.other(t, `DELETE FROM restlive_outbox`)
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM restlive_outbox`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows left after DELETE (%v), want the newest", n, err)
	}
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)
	checkChanges(t, rec.waitFor(t, "todolist.Task", "4"), insertsInto14(1, 4))
}

// TestSQLiteCursorAhead: an outbox dropped and installed again, whose
// seqs start below the cursor, stops the reader with an error that says
// what to do, rather than skipping every new change; doing it publishes
// them.
func TestSQLiteCursorAhead(t *testing.T) {
	d := openSQLite(t)
	d.install(t, tasks)
	rec := newRecorder()
	_, stop := startReader(t, d, Config{Publisher: rec})
	for i := 1; i <= 3; i++ {
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	rec.wait(t, 3)
	stop()
	d.exec(t, `DROP TABLE restlive_outbox`)
	d.install(t, tasks)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)

	cfg := Config{Publisher: rec}
	cfg.setDefaults(SQLite)
	s, err := (&sqliteBackend{db: d.db, cfg: &cfg, owner: "test"}).lead(context.Background())
	if err == nil {
		s.close()
		t.Fatal("lead accepted a cursor ahead of the outbox")
	}
	if !strings.Contains(err.Error(), "DELETE FROM restlive_cursor") {
		t.Fatalf("lead: %v", err)
	}
	d.exec(t, `DELETE FROM restlive_cursor`)
	d.install(t, tasks)
	startReader(t, d, Config{Publisher: rec})
	got := rec.wait(t, 4)
	checkChanges(t, got[3:], insertsInto14(4, 4))
}

// TestSQLiteInsertShapes: every way SQLite has to insert over an
// existing row reports the old row's values; one that changes nothing
// reports an update that changed nothing.
func TestSQLiteInsertShapes(t *testing.T) {
	for _, tt := range []struct {
		name, sql string
		want      []live.Change
	}{
		{"replace", `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (1, 15)`,
			[]live.Change{task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "15"))}},
		{"replace of a new row", `REPLACE INTO tasks (id, list_id) VALUES (3, 15)`,
			[]live.Change{task(live.OpInsert, "3", nil, m("list_id", "15"))}},
		{"replace without a pk", `REPLACE INTO tasks (list_id) VALUES (15)`,
			[]live.Change{task(live.OpInsert, "3", nil, m("list_id", "15"))}},
		{"replace of several rows", `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (1, 15), (3, 16), (2, 17)`,
			[]live.Change{
				task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "15")),
				task(live.OpInsert, "3", nil, m("list_id", "16")),
				task(live.OpUpdate, "2", m("list_id", "14"), m("list_id", "17")),
			}},
		{"replace by select", `INSERT OR REPLACE INTO tasks (id, list_id) SELECT id, list_id + 1 FROM tasks`,
			[]live.Change{
				task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "15")),
				task(live.OpUpdate, "2", m("list_id", "14"), m("list_id", "15")),
			}},
		{"or ignore", `INSERT OR IGNORE INTO tasks (id, list_id) VALUES (1, 15)`,
			[]live.Change{task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "14"))}},
		{"do nothing", `INSERT INTO tasks (id, list_id) VALUES (1, 15) ON CONFLICT (id) DO NOTHING`,
			[]live.Change{task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "14"))}},
		{"do update", `INSERT INTO tasks (id, list_id) VALUES (1, 15) ON CONFLICT (id) DO UPDATE SET list_id = excluded.list_id`,
			[]live.Change{task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "15"))}},
		{"conflict fails", `INSERT INTO tasks (id, list_id) VALUES (1, 15)`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := openSQLite(t)
			d.install(t, tasks, lists)
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14), (2, 14)`)
			rec := newRecorder()
			startReader(t, d, Config{Publisher: rec})
			before := len(rec.wait(t, 2))
			_, err := d.db.Exec(tt.sql)
			if (err != nil) != (tt.want == nil) {
				t.Fatalf("%s: %v", tt.sql, err)
			}
			d.exec(t, `INSERT INTO lists (id) VALUES (1)`)
			got := rec.waitFor(t, "todolist.List", "1")[before:]
			checkChanges(t, got, append(tt.want, live.Change{Model: "todolist.List", PK: "1", Op: live.OpInsert, New: m()}))
		})
	}
}

// TestSQLiteReplaceAcrossBatches: a batch that would end between a
// replaced row and the insert that replaced it takes the insert too, so
// the two are still one change.
func TestSQLiteReplaceAcrossBatches(t *testing.T) {
	d := openSQLite(t)
	d.install(t, tasks)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.exec(t, `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (1, 15)`)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec, BatchSize: 2})
	checkChanges(t, rec.waitFor(t, "todolist.Task", "2"), []live.Change{
		task(live.OpInsert, "1", nil, m("list_id", "14")),
		task(live.OpUpdate, "1", m("list_id", "14"), m("list_id", "15")),
		task(live.OpInsert, "2", nil, m("list_id", "14")),
	})
}
