package capture_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/capturetest"
	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

func TestInstallRejects(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		d    capture.Dialect
		t    capture.Table
	}{
		{"no dialect", nil, capturetest.Tasks},
		{"no model", capture.SQLite, capture.Table{Table: "tasks", PK: "id"}},
		{"quote in table", capture.SQLite, capture.Table{Model: "a.B", Table: `tasks"`, PK: "id"}},
		{"quote in field", capture.SQLite, capture.Table{Model: "a.B", Table: "tasks", PK: "id", Fields: []string{`x"y`}}},
		{"no such table", capture.SQLite, capture.Table{Model: "a.B", Table: "nope", PK: "id"}},
		{"boolean not a field", capture.SQLite, capture.Table{Model: "a.B", Table: "tasks", PK: "id", BoolFields: []string{"done"}}},
	} {
		if err := capture.Install(ctx, d.DB, tt.d, tt.t); err == nil {
			t.Errorf("%s: Install succeeded", tt.name)
		}
	}
	// A failed Install changed nothing.
	var n int
	if err := d.DB.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name LIKE 'restlive%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d restlive objects after failed installs", n)
	}
}

func TestRunWithoutInstall(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	r, err := capture.NewReader(d.DB, capture.SQLite, capture.Config{Publisher: capturetest.NewRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("Run succeeded without an outbox")
	}
}

// TestLeaseFencing: on SQLite a reader whose lease was taken over cannot
// move the cursor.
func TestLeaseFencing(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	d.Install(t)
	ctx := context.Background()
	backend := func(owner string) outbox.Backend {
		return capture.SQLite.Backend(d.DB, outbox.Settings{Lease: time.Minute, Logger: capturetest.Quiet, Owner: owner})
	}
	a, b := backend("a"), backend("b")
	sa, err := a.Lead(ctx)
	if err != nil || sa == nil {
		t.Fatalf("a.lead: %v, %v", sa, err)
	}
	if sb, err := b.Lead(ctx); err != nil || sb != nil {
		t.Fatalf("b.lead while a holds the lease: %v, %v", sb, err)
	}
	// The lease expires (a paused too long): b takes over.
	d.Exec(t, `UPDATE restlive_cursor SET lease_until = 0`)
	sb, err := b.Lead(ctx)
	if err != nil || sb == nil {
		t.Fatalf("b.lead after expiry: %v, %v", sb, err)
	}
	if err := sa.Commit(ctx, 5); !errors.Is(err, outbox.ErrLostLead) {
		t.Errorf("a.commit after losing the lease: %v", err)
	}
	if err := sb.Commit(ctx, 5); err != nil {
		t.Errorf("b.commit: %v", err)
	}
}

// TestSQLitePrune: rows go by age and number, the oldest first, never
// one not yet published.
func TestSQLitePrune(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	d.Install(t, capturetest.Tasks)
	ctx := context.Background()
	for i := 1; i <= 50; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	s := d.Lead(t, "test")
	// Read all 50, publish the first 30.
	rows, err := s.Next(ctx, 100)
	if err != nil || len(rows) != 50 {
		t.Fatalf("next: %d rows, %v", len(rows), err)
	}
	if err := s.Commit(ctx, rows[29].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing is old or beyond 1,000 rows.
	if n, err := s.Prune(ctx, time.Hour, 1000); err != nil || n != 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	// Keep 25 rows: the oldest 25 go.
	if n, err := s.Prune(ctx, time.Hour, 25); err != nil || n != 25 {
		t.Fatalf("prune to 25 rows: %d, %v", n, err)
	}
	// Everything is old: the other 5 published go, never the 20
	// unpublished, whatever the settings.
	d.Exec(t, `UPDATE restlive_outbox SET created_at = unixepoch() - 7200`)
	if n, err := s.Prune(ctx, time.Hour, 1000); err != nil || n != 5 {
		t.Fatalf("prune by age: %d, %v", n, err)
	}
	if n, err := s.Prune(ctx, time.Nanosecond, 1); err != nil || n != 0 {
		t.Fatalf("prune of unpublished rows: %d, %v", n, err)
	}
	if n := d.CountRows(t, "restlive_outbox"); n != 20 {
		t.Fatalf("%d rows left, want the 20 unpublished", n)
	}
}

// TestSQLiteOutboxEmptied: an operator's DELETE FROM restlive_outbox
// keeps the newest row, so the seq goes on from it and the writes after
// are published. Were the table emptied, the next rowid would be 1, below
// the cursor, and they would be skipped.
func TestSQLiteOutboxEmptied(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	d.Install(t, capturetest.Tasks)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	for i := 1; i <= 3; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	rec.Wait(t, 3)
	d.Other(t, `DELETE FROM restlive_outbox`)
	var n int
	if err := d.DB.QueryRow(`SELECT count(*) FROM restlive_outbox`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows left after DELETE (%v), want the newest", n, err)
	}
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)
	capturetest.CheckChanges(t, rec.WaitFor(t, "todolist.Task", "4"), capturetest.InsertsInto14(1, 4))
}

// TestSQLiteCursorAhead: an outbox dropped and installed again, whose
// seqs start below the cursor, stops the reader with an error that says
// what to do, rather than skipping every new change; doing it publishes
// them.
func TestSQLiteCursorAhead(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	d.Install(t, capturetest.Tasks)
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	for i := 1; i <= 3; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	rec.Wait(t, 3)
	stop()
	d.Exec(t, `DROP TABLE restlive_outbox`)
	d.Install(t, capturetest.Tasks)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)

	s, err := capture.SQLite.Backend(d.DB, outbox.Settings{Lease: time.Minute, Logger: capturetest.Quiet, Owner: "test"}).
		Lead(context.Background())
	if err == nil {
		s.Close()
		t.Fatal("lead accepted a cursor ahead of the outbox")
	}
	if !strings.Contains(err.Error(), "DELETE FROM restlive_cursor") {
		t.Fatalf("lead: %v", err)
	}
	d.Exec(t, `DELETE FROM restlive_cursor`)
	d.Install(t, capturetest.Tasks)
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	got := rec.Wait(t, 4)
	capturetest.CheckChanges(t, got[3:], capturetest.InsertsInto14(4, 4))
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
			[]live.Change{capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "15"))}},
		{"replace of a new row", `REPLACE INTO tasks (id, list_id) VALUES (3, 15)`,
			[]live.Change{capturetest.Task(live.OpInsert, "3", nil, capturetest.M("list_id", "15"))}},
		{"replace without a pk", `REPLACE INTO tasks (list_id) VALUES (15)`,
			[]live.Change{capturetest.Task(live.OpInsert, "3", nil, capturetest.M("list_id", "15"))}},
		{"replace of several rows", `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (1, 15), (3, 16), (2, 17)`,
			[]live.Change{
				capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "15")),
				capturetest.Task(live.OpInsert, "3", nil, capturetest.M("list_id", "16")),
				capturetest.Task(live.OpUpdate, "2", capturetest.M("list_id", "14"), capturetest.M("list_id", "17")),
			}},
		{"replace by select", `INSERT OR REPLACE INTO tasks (id, list_id) SELECT id, list_id + 1 FROM tasks`,
			[]live.Change{
				capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "15")),
				capturetest.Task(live.OpUpdate, "2", capturetest.M("list_id", "14"), capturetest.M("list_id", "15")),
			}},
		{"or ignore", `INSERT OR IGNORE INTO tasks (id, list_id) VALUES (1, 15)`,
			[]live.Change{capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "14"))}},
		{"do nothing", `INSERT INTO tasks (id, list_id) VALUES (1, 15) ON CONFLICT (id) DO NOTHING`,
			[]live.Change{capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "14"))}},
		{"do update", `INSERT INTO tasks (id, list_id) VALUES (1, 15) ON CONFLICT (id) DO UPDATE SET list_id = excluded.list_id`,
			[]live.Change{capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "15"))}},
		{"conflict fails", `INSERT INTO tasks (id, list_id) VALUES (1, 15)`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := capturetest.OpenSQLite(t)
			d.Install(t, capturetest.Tasks, capturetest.Lists)
			d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14), (2, 14)`)
			rec := capturetest.NewRecorder()
			capturetest.StartReader(t, d, capture.Config{Publisher: rec})
			before := len(rec.Wait(t, 2))
			_, err := d.DB.Exec(tt.sql)
			if (err != nil) != (tt.want == nil) {
				t.Fatalf("%s: %v", tt.sql, err)
			}
			d.Exec(t, `INSERT INTO lists (id) VALUES (1)`)
			got := rec.WaitFor(t, "todolist.List", "1")[before:]
			capturetest.CheckChanges(t, got, append(tt.want, live.Change{Model: "todolist.List", PK: "1", Op: live.OpInsert, New: capturetest.M()}))
		})
	}
}

// TestSQLiteReplaceAcrossBatches: a batch that would end between a
// replaced row and the insert that replaced it takes the insert too, so
// the two are still one change.
func TestSQLiteReplaceAcrossBatches(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	d.Install(t, capturetest.Tasks)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.Exec(t, `INSERT OR REPLACE INTO tasks (id, list_id) VALUES (1, 15)`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 2})
	capturetest.CheckChanges(t, rec.WaitFor(t, "todolist.Task", "2"), []live.Change{
		capturetest.Task(live.OpInsert, "1", nil, capturetest.M("list_id", "14")),
		capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "15")),
		capturetest.Task(live.OpInsert, "2", nil, capturetest.M("list_id", "14")),
	})
}

// BenchmarkPrune measures how long pruning takes per deleted row, on a
// SQLite outbox of 10,000 published rows pruned to the newest one.
func BenchmarkPrune(b *testing.B) {
	const rows = 10000
	d := capturetest.OpenSQLite(b)
	d.Install(b, capturetest.Tasks)
	ctx := context.Background()
	s := d.Lead(b, "bench")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d.Exec(b, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO restlive_outbox (model, pk, op, new) SELECT 'todolist.Task', i, 'I', '{"list_id":14}' FROM n`, rows)
		var newest uint64
		if err := d.DB.QueryRow(`SELECT max(seq) FROM restlive_outbox`).Scan(&newest); err != nil {
			b.Fatal(err)
		}
		if err := s.Commit(ctx, newest); err != nil {
			b.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := s.Prune(ctx, time.Hour, 1)
		if err != nil || n < rows-1 {
			b.Fatalf("pruned %d rows: %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

// TestSQLiteHistoryUnpublished: Since answers for changes committed but
// not yet published too (a scope read now shows them), and a position
// among them is not ahead; one beyond the newest row is.
func TestSQLiteHistoryUnpublished(t *testing.T) {
	d := capturetest.OpenSQLite(t)
	d.Install(t, capturetest.Tasks)
	h, err := capture.NewHistory(d.DB, capture.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	head, err := h.Head(ctx)
	if err != nil || head.Seq != 0 {
		t.Fatalf("head %+v %v, want 0: no reader runs", head, err)
	}
	for i := 1; i <= 3; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	for since, want := range map[uint64][]uint64{0: {1, 2, 3}, 2: {3}, 3: nil} {
		got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: since}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatalf("since %d: %v", since, err)
		}
		var seqs []uint64
		for _, c := range got {
			seqs = append(seqs, c.Seq)
		}
		if !slices.Equal(seqs, want) {
			t.Errorf("since %d: seqs %v, want %v", since, seqs, want)
		}
	}
	if _, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: 4}, []string{"todolist.Task"}, 100); !errors.Is(err, live.ErrHistoryGone) {
		t.Errorf("since 4, beyond the newest: %v, want ErrHistoryGone", err)
	}
}
