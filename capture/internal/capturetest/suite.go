package capturetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/live"
)

// An Opener opens a new database for a test.
type Opener func(testing.TB) *DB

// Run runs the suite every dialect passes on the databases open opens.
func Run(t *testing.T, open Opener) {
	for _, tt := range []struct {
		name string
		test func(*testing.T, Opener)
	}{
		{"Capture", testCapture},
		{"Restart", testRestart},
		{"CommitOrder", testCommitOrder},
		{"PublishFailure", testPublishFailure},
		{"PublishFailureKeepsTheLead", testPublishFailureKeepsTheLead},
		{"BoolFields", testBoolFields},
		{"Install", testInstall},
		{"OneReader", testOneReader},
		{"BadOutboxRow", testBadOutboxRow},
		{"History", testHistory},
		{"HistoryGone", testHistoryGone},
		{"HistoryTooLong", testHistoryTooLong},
		{"HistoryWhileReading", testHistoryWhileReading},
		{"HistoryEpoch", testHistoryEpoch},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, open) })
	}
}

// testCapture: every kind of write is published as the change it is.
func testCapture(t *testing.T, open Opener) {
	tests := []struct {
		name string
		// write makes the writes through d; the changes it must produce,
		// in order, follow.
		write func(t *testing.T, d *DB)
		want  []live.Change
	}{
		{
			name: "insert update delete",
			write: func(t *testing.T, d *DB) {
				d.Exec(t, `INSERT INTO tasks (id, list_id, title) VALUES (1, 14, 'a')`)
				d.Exec(t, `UPDATE tasks SET title = 'b' WHERE id = 1`)
				d.Exec(t, `DELETE FROM tasks WHERE id = 1`)
			},
			want: []live.Change{
				Task(live.OpInsert, "1", nil, M("list_id", "14")),
				Task(live.OpUpdate, "1", M("list_id", "14"), M("list_id", "14")),
				Task(live.OpDelete, "1", M("list_id", "14"), nil),
			},
		},
		{
			name: "move between lists",
			write: func(t *testing.T, d *DB) {
				d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 14)`)
				d.Exec(t, `UPDATE tasks SET list_id = 15 WHERE id = 7`)
			},
			want: []live.Change{
				Task(live.OpInsert, "7", nil, M("list_id", "14")),
				Task(live.OpUpdate, "7", M("list_id", "14"), M("list_id", "15")),
			},
		},
		{
			// SQLite's INSERT OR REPLACE deletes the old row without a delete
			// trigger; PostgreSQL's upsert is an update.
			name: "replace moves between lists",
			write: func(t *testing.T, d *DB) {
				d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 14)`)
				if !d.Postgres() {
					d.Exec(t, `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (7, 15)`)
				} else {
					d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 15) ON CONFLICT (id) DO UPDATE SET list_id = excluded.list_id`)
				}
			},
			want: []live.Change{
				Task(live.OpInsert, "7", nil, M("list_id", "14")),
				Task(live.OpUpdate, "7", M("list_id", "14"), M("list_id", "15")),
			},
		},
		{
			name: "null group value is left out",
			write: func(t *testing.T, d *DB) {
				d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, NULL)`)
				d.Exec(t, `UPDATE tasks SET list_id = 14 WHERE id = 3`)
			},
			want: []live.Change{
				Task(live.OpInsert, "3", nil, M()),
				Task(live.OpUpdate, "3", M(), M("list_id", "14")),
			},
		},
		{
			name: "bulk update by raw SQL",
			write: func(t *testing.T, d *DB) {
				d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14), (2, 15), (3, 14)`)
				d.Exec(t, `UPDATE tasks SET done = true WHERE list_id = 14`)
			},
			want: []live.Change{
				Task(live.OpInsert, "1", nil, M("list_id", "14")),
				Task(live.OpInsert, "2", nil, M("list_id", "15")),
				Task(live.OpInsert, "3", nil, M("list_id", "14")),
				Task(live.OpUpdate, "1", M("list_id", "14"), M("list_id", "14")),
				Task(live.OpUpdate, "3", M("list_id", "14"), M("list_id", "14")),
			},
		},
		{
			name: "write by another process",
			write: func(t *testing.T, d *DB) {
				d.Other(t, `INSERT INTO tasks (id, list_id) VALUES (5, 14); UPDATE tasks SET list_id = 16 WHERE id = 5;`)
			},
			want: []live.Change{
				Task(live.OpInsert, "5", nil, M("list_id", "14")),
				Task(live.OpUpdate, "5", M("list_id", "14"), M("list_id", "16")),
			},
		},
		{
			name: "primary key change is a delete and an insert",
			write: func(t *testing.T, d *DB) {
				d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
				d.Exec(t, `UPDATE tasks SET id = 2, list_id = 15 WHERE id = 1`)
			},
			want: []live.Change{
				Task(live.OpInsert, "1", nil, M("list_id", "14")),
				Task(live.OpDelete, "1", M("list_id", "14"), nil),
				Task(live.OpInsert, "2", nil, M("list_id", "15")),
			},
		},
		{
			name: "rollback gives nothing",
			write: func(t *testing.T, d *DB) {
				tx, err := d.DB.Begin()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(`INSERT INTO tasks (id, list_id) VALUES (1, 14)`); err != nil {
					t.Fatal(err)
				}
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
			},
			want: []live.Change{Task(live.OpInsert, "2", nil, M("list_id", "15"))},
		},
		{
			name: "transaction of three in order",
			write: func(t *testing.T, d *DB) {
				tx, err := d.DB.Begin()
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
				Task(live.OpInsert, "9", nil, M("list_id", "14")),
				Task(live.OpInsert, "8", nil, M("list_id", "14")),
				Task(live.OpUpdate, "9", M("list_id", "14"), M("list_id", "15")),
			},
		},
	}
	d := open(t)
	d.Install(t, Tasks, Lists)
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Clean up, and wait for the clean-up's changes to pass.
			d.Exec(t, `DELETE FROM tasks`)
			d.Exec(t, `INSERT INTO lists (id) VALUES (?)`, 2000+i)
			before := len(rec.WaitFor(t, "todolist.List", strconv.Itoa(2000+i)))
			tt.write(t, d)
			// A marker write: every change of the test comes before it.
			marker := strconv.Itoa(1000 + i)
			d.Exec(t, `INSERT INTO lists (id) VALUES (?)`, 1000+i)
			got := rec.WaitFor(t, "todolist.List", marker)[before:]
			want := append(tt.want, live.Change{Model: "todolist.List", PK: marker, Op: live.OpInsert, New: M()})
			CheckChanges(t, got, want)
		})
	}
}

// testRestart stops the reader, commits 100 writes, and starts another:
// all 100 are published, in order, none twice.
func testRestart(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks)
	rec := NewRecorder()
	_, stop := StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.Wait(t, 1)
	stop()
	for i := 2; i <= 101; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, ?)`, i, 14+i%2)
	}
	StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 30})
	rec.Wait(t, 101)
	want := []live.Change{Task(live.OpInsert, "1", nil, M("list_id", "14"))}
	for i := 2; i <= 101; i++ {
		want = append(want, Task(live.OpInsert, strconv.Itoa(i), nil, M("list_id", strconv.Itoa(14+i%2))))
	}
	// A write after the catch-up proves nothing more was coming.
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (102, 14)`)
	got := rec.WaitFor(t, "todolist.Task", "102")
	CheckChanges(t, got, append(want, Task(live.OpInsert, "102", nil, M("list_id", "14"))))
}

// testCommitOrder: a transaction that wrote first and committed last is
// published last, whole, after it commits, and one left open holds back
// none of the others.
func testCommitOrder(t *testing.T, open Opener) {
	d := open(t)
	if !d.Postgres() {
		t.Skip("SQLite runs one writing transaction at a time")
	}
	d.Install(t, Tasks)
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec})
	first := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (99, 14)`) // left open
	second := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	if _, err := first.Exec(d.Q(`INSERT INTO tasks (id, list_id) VALUES (3, 14)`)); err != nil {
		t.Fatal(err)
	}
	if err := second.Commit(); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, 1)
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)
	CheckChanges(t, rec.WaitFor(t, "todolist.Task", "4"), []live.Change{
		Task(live.OpInsert, "2", nil, M("list_id", "14")),
		Task(live.OpInsert, "1", nil, M("list_id", "14")),
		Task(live.OpInsert, "3", nil, M("list_id", "14")),
		Task(live.OpInsert, "4", nil, M("list_id", "14")),
	})
}

// testPublishFailure: a failing Publisher delays changes, loses none and
// repeats none.
func testPublishFailure(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks)
	rec := NewRecorder()
	rec.fail = 2
	StartReader(t, d, capture.Config{Publisher: rec, Lease: 200 * time.Millisecond})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
	got := rec.WaitFor(t, "todolist.Task", "2")
	CheckChanges(t, got, []live.Change{
		Task(live.OpInsert, "1", nil, M("list_id", "14")),
		Task(live.OpInsert, "2", nil, M("list_id", "15")),
	})
}

// testPublishFailureKeepsTheLead: a reader whose Publisher fails for a
// moment (a broker restarting) keeps reading the outbox rather than hand
// it to a standby; one whose Publisher keeps failing for a lease hands it
// over, so a process that can publish does.
func testPublishFailureKeepsTheLead(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks)
	lead, standby := NewRecorder(), NewRecorder()
	const lease = time.Second
	StartReader(t, d, capture.Config{Publisher: lead, Lease: lease})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	lead.Wait(t, 1)
	StartReader(t, d, capture.Config{Publisher: standby, Lease: lease})

	lead.Fail(2) // about 150ms of retries
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
	lead.WaitFor(t, "todolist.Task", "3")
	if got := standby.Snapshot(); len(got) > 0 {
		t.Fatalf("the standby took over during a short failure and published %+v", got)
	}

	lead.Fail(1 << 30)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)
	standby.WaitFor(t, "todolist.Task", "4")
}

// testBoolFields: a boolean column reads true and false on both
// databases, though SQLite stores 0 and 1.
func testBoolFields(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, capture.Table{Model: "todolist.Task", Table: "tasks", PK: "id",
		Fields: []string{"list_id", "done"}, BoolFields: []string{"done"}})
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.Exec(t, `UPDATE tasks SET done = true WHERE id = 1`)
	d.Exec(t, `UPDATE tasks SET list_id = NULL WHERE id = 1`)
	CheckChanges(t, rec.Wait(t, 3), []live.Change{
		Task(live.OpInsert, "1", nil, M("list_id", "14", "done", "false")),
		Task(live.OpUpdate, "1", M("list_id", "14", "done", "false"), M("list_id", "14", "done", "true")),
		Task(live.OpUpdate, "1", M("list_id", "14", "done", "true"), M("done", "true")),
	})
}

// testInstall: Install is idempotent, replaces triggers whose fields
// changed, and Remove stops the capture of a table.
func testInstall(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks, Lists)
	d.Install(t, Tasks, Lists)
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id, title) VALUES (1, 14, 'a')`)

	wider := Tasks
	wider.Fields = []string{"list_id", "title", "done"}
	d.Install(t, wider)
	d.Exec(t, `UPDATE tasks SET title = 'b', done = true WHERE id = 1`)

	if err := capture.Remove(context.Background(), d.DB, d.Dialect, "tasks"); err != nil {
		t.Fatal(err)
	}
	if err := capture.Remove(context.Background(), d.DB, d.Dialect, "tasks"); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, `UPDATE tasks SET title = 'c' WHERE id = 1`)
	d.Exec(t, `INSERT INTO lists (id) VALUES (1)`)

	// SQLite has no boolean type: booleans are stored, and reported,
	// as 0 and 1.
	undone, done := "false", "true"
	if !d.Postgres() {
		undone, done = "0", "1"
	}
	got := rec.WaitFor(t, "todolist.List", "1")
	CheckChanges(t, got, []live.Change{
		Task(live.OpInsert, "1", nil, M("list_id", "14")),
		Task(live.OpUpdate, "1", M("list_id", "14", "title", "a", "done", undone), M("list_id", "14", "title", "b", "done", done)),
		{Model: "todolist.List", PK: "1", Op: live.OpInsert, New: M()},
	})
}

// testOneReader runs two readers on one database: only one publishes;
// when it stops the other takes over, and no change is lost or repeated.
func testOneReader(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks)
	rec := NewRecorder()
	cfg := capture.Config{Publisher: rec, Lease: 500 * time.Millisecond}
	_, stop1 := StartReader(t, d, cfg)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.Wait(t, 1)
	StartReader(t, d, cfg)
	for i := 2; i <= 20; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
		if i == 10 {
			stop1()
		}
	}
	got := rec.WaitFor(t, "todolist.Task", "20")
	CheckChanges(t, got, InsertsInto14(1, 20))
}

// testBadOutboxRow: a row written by hand with an unknown op is published
// as an update whose fields are unknown, and the reader goes on.
func testBadOutboxRow(t *testing.T, open Opener) {
	d := open(t)
	if !d.Store.Outbox {
		t.Skip("no outbox to write into")
	}
	d.Install(t, Tasks)
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec, Logger: Quiet})
	d.Exec(t, `INSERT INTO restlive_outbox (model, pk, op, new) VALUES ('todolist.Task', '1', '', '{"list_id": 14}')`)
	d.Exec(t, `INSERT INTO restlive_outbox (model, pk, op, new) VALUES ('todolist.Task', '2', 'X', '[1]')`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
	CheckChanges(t, rec.Wait(t, 3), []live.Change{
		Task(live.OpUpdate, "1", nil, nil),
		Task(live.OpUpdate, "2", nil, nil),
		Task(live.OpInsert, "3", nil, M("list_id", "14")),
	})
}
