package pgcapture

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/capturetest"
	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

func open(t testing.TB) *capturetest.DB { return capturetest.OpenPostgres(t, Dialect) }

// newBackend returns a backend of d's outbox for a test to drive by hand.
func newBackend(d *capturetest.DB, owner string) *postgresBackend {
	return &postgresBackend{db: d.DB, s: outbox.Settings{Lease: 5 * time.Second, Logger: capturetest.Quiet, Owner: owner}}
}

func TestTransactionPublishedAfterCommit(t *testing.T) {
	// On SQLite a second writer waits for the first, so only PostgreSQL
	// can show that a commit elsewhere does not release an open
	// transaction's writes.
	d := open(t)
	d.Install(t, capturetest.Tasks, capturetest.Lists)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	tx, err := d.DB.Begin()
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
	d.Exec(t, `INSERT INTO lists (id) VALUES (1)`)
	if got := rec.WaitFor(t, "todolist.List", "1"); len(got) != 1 {
		t.Fatalf("before commit: %+v", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := rec.Wait(t, 4)
	capturetest.CheckChanges(t, got[1:], []live.Change{
		capturetest.Task(live.OpInsert, "1", nil, capturetest.M("list_id", "14")),
		capturetest.Task(live.OpInsert, "2", nil, capturetest.M("list_id", "14")),
		capturetest.Task(live.OpInsert, "3", nil, capturetest.M("list_id", "14")),
	})
}

// TestOutOfOrderCommit commits two transactions in the opposite order of
// their outbox ids, and of their transaction ids too: a reader of id >
// cursor, or of rows older than the snapshot's xmin, would lose one.
func TestOutOfOrderCommit(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks, capturetest.Lists)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	ctx := context.Background()

	t1, err := d.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Rollback()
	t2, err := d.DB.BeginTx(ctx, nil)
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
	got := rec.Wait(t, 1)
	capturetest.CheckChanges(t, got, []live.Change{capturetest.Task(live.OpInsert, "1", nil, capturetest.M("list_id", "14"))})
	// ...and t2's lower id is not lost when it commits after.
	if err := t2.Commit(); err != nil {
		t.Fatal(err)
	}
	got = rec.Wait(t, 2)
	capturetest.CheckChanges(t, got, []live.Change{
		capturetest.Task(live.OpInsert, "1", nil, capturetest.M("list_id", "14")),
		capturetest.Task(live.OpInsert, "2", nil, capturetest.M("list_id", "14")),
	})
	// A long-open transaction does not hold the others back.
	d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (10, 14)`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (11, 14)`)
	rec.WaitFor(t, "todolist.Task", "11")
}

// TestReaderKilled ends the reader's database session under it:
// it reconnects, takes the lock again, and loses and repeats nothing.
func TestReaderKilled(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec, Lease: 200 * time.Millisecond})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.Wait(t, 1)
	var killed bool
	if err := d.DB.QueryRow(`SELECT bool_or(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the reader's session: %v, %v", killed, err)
	}
	for i := 2; i <= 10; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	got := rec.WaitFor(t, "todolist.Task", "10")
	capturetest.CheckChanges(t, got, capturetest.InsertsInto14(1, 10))
}

// TestListensAgainWhenIdle: the reader stops listening while
// writes keep coming and reads every BatchDelay instead; once they stop
// it listens again, so a write after a burst is published at once, not
// at the next poll, which here is an hour away.
func TestListensAgainWhenIdle(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	rec := capturetest.NewRecorder()
	// listeningAfter is how many changes had been published when the
	// reader last started waiting for a notification.
	var listeningAfter atomic.Int64
	listening := make(chan struct{}, 1)
	d.Dialect = dialect{hooks: &testHooks{listening: func() {
		listeningAfter.Store(int64(len(rec.Snapshot())))
		select {
		case listening <- struct{}{}:
		default:
		}
	}}}
	capturetest.StartReader(t, d, capture.Config{Publisher: rec, PollInterval: time.Hour})
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
			d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, id)
		}
		rec.WaitFor(t, "todolist.Task", strconv.Itoa(id))
		// ...then, once it listens again, one write it must be woken for.
		idle(id)
		id++
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, id)
		rec.WaitFor(t, "todolist.Task", strconv.Itoa(id))
	}
	capturetest.CheckChanges(t, rec.Snapshot(), capturetest.InsertsInto14(1, id))
}

// TestTakeoverReadsTheSameRead: a reader that read and published
// changes, then died before writing how far it got, is followed by one
// that publishes the same changes with the same seq, even when a
// transaction with an older id committed in between; that transaction's
// change comes after them.
func TestTakeoverReadsTheSameRead(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	long := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (10, 14)`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (4, 14)`)

	read := func(s outbox.Session) []live.Change {
		t.Helper()
		rows, err := s.Next(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		return outbox.Changes(nil, rows)
	}
	want := func(from uint64, pks ...string) []live.Change {
		var out []live.Change
		for i, pk := range pks {
			c := capturetest.Task(live.OpInsert, pk, nil, capturetest.M("list_id", "14"))
			c.Seq = from + uint64(i)
			out = append(out, c)
		}
		return out
	}
	check := func(got, want []live.Change) {
		t.Helper()
		capturetest.CheckChanges(t, got, want)
		if len(got) > 0 && len(want) > 0 && got[0].Seq != want[0].Seq {
			t.Errorf("first seq %d, want %d", got[0].Seq, want[0].Seq)
		}
	}

	first, err := newBackend(d, "").Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(read(first), want(1, "1", "2", "3", "4"))
	first.Close() // dies without writing that it published them

	if err := long.Commit(); err != nil {
		t.Fatal(err)
	}
	second, err := newBackend(d, "").Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	got := read(second)
	check(got, want(1, "1", "2", "3", "4"))
	if err := second.Commit(ctx, got[len(got)-1].Seq); err != nil {
		t.Fatal(err)
	}
	check(read(second), want(5, "10"))

	// History gives the changes the seqs they were published with, once
	// the cursor says they were.
	if err := second.Commit(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h := d.NewHistory(t)
	head := capturetest.WaitHead(t, h, 5)
	for from := range uint64(6) {
		got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: from}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := capturetest.SameChanges(got, capturetest.Of(append(want(1, "1", "2", "3", "4"), want(5, "10")...), from, "todolist.Task")); err != nil {
			t.Errorf("since %d: %v", from, err)
		}
	}
}

// TestInstallReplacesOldOutbox: an outbox of the layout before
// reads by snapshot is replaced when everything in it is published, and
// stops Install with an error that says what to do when not.
func TestInstallReplacesOldOutbox(t *testing.T) {
	d := open(t)
	d.Exec(t, `CREATE TABLE restlive_outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, seq bigint,
		created_at timestamptz NOT NULL DEFAULT now(), model text NOT NULL, pk text NOT NULL, op text NOT NULL, old jsonb, new jsonb)`)
	d.Exec(t, `CREATE TABLE restlive_cursor (name text PRIMARY KEY, sequenced bigint NOT NULL DEFAULT 0, published bigint NOT NULL DEFAULT 0)`)
	d.Exec(t, `INSERT INTO restlive_cursor (name, sequenced, published) VALUES ('default', 1, 1)`)
	d.Exec(t, `INSERT INTO restlive_outbox (seq, model, pk, op) VALUES (1, 'todolist.Task', '1', 'I'), (NULL, 'todolist.Task', '2', 'I')`)
	err := capture.Install(context.Background(), d.DB, Dialect, capturetest.Tasks)
	if err == nil || !strings.Contains(err.Error(), "has not published") {
		t.Fatalf("install over an outbox with a change to publish: %v", err)
	}
	d.Exec(t, `UPDATE restlive_outbox SET seq = 2 WHERE seq IS NULL`)
	d.Exec(t, `UPDATE restlive_cursor SET sequenced = 2, published = 2`)
	d.Install(t, capturetest.Tasks)

	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
	capturetest.CheckChanges(t, rec.Wait(t, 1), []live.Change{capturetest.Task(live.OpInsert, "3", nil, capturetest.M("list_id", "14"))})
}

// TestTransactionOrder: transactions are ordered by their ids as
// numbers, also where they gain a digit (xids do on a young cluster), in
// reading and in pruning. The rows are written by hand with the ids of
// long-finished transactions.
func TestTransactionOrder(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	for _, xid := range []string{"100", "9", "99", "10"} {
		d.Exec(t, `INSERT INTO restlive_outbox (xid, model, pk, op, new) VALUES (?::xid8, 'todolist.Task', ?, 'I', '{"list_id": 14}')`, xid, xid)
	}
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 3})
	var want []live.Change
	for _, pk := range []string{"9", "10", "99", "100"} {
		want = append(want, capturetest.Task(live.OpInsert, pk, nil, capturetest.M("list_id", "14")))
	}
	capturetest.CheckChanges(t, rec.Wait(t, 4), want)
	stop() // writes the cursor

	h := d.NewHistory(t)
	ctx := context.Background()
	head, err := h.Head(ctx)
	if err != nil || head.Seq != 4 {
		t.Fatalf("head %+v, %v; want seq 4", head, err)
	}
	got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: 1}, []string{"todolist.Task"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	capturetest.CheckChanges(t, got, want[1:])
	if len(got) > 0 && got[0].Seq != 2 {
		t.Errorf("since 1: first seq %d, want 2", got[0].Seq)
	}

	// A read after them; pruning to one row deletes the four rows its
	// done snapshot sees, whose xids are far below its xmax.
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1000, 14)`)
	s, err := newBackend(d, "").Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rows := capturetest.ReadAll(t, s, 100); len(rows) != 1 || rows[0].Seq != 5 {
		t.Fatalf("read %+v, want seq 5", rows)
	}
	if n, err := s.Prune(ctx, time.Hour, 1); err != nil || n != 4 {
		t.Errorf("pruned %d (%v), want 4", n, err)
	}
}

// TestOldReaderCannotMoveCursor: a reader whose session died
// while another took over cannot write the cursor through another
// connection afterwards; if it could, it would move the cursor to where
// it was, behind the new reader, whose seq values the next reader would
// then give to other changes.
func TestOldReaderCannotMoveCursor(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	lead := func(owner string) *postgresSession {
		t.Helper()
		s, err := newBackend(d, owner).Lead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s.(*postgresSession)
	}
	read := func(s *postgresSession, limit int) []outbox.Row {
		t.Helper()
		rows, err := s.Next(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, rows[len(rows)-1].Seq); err != nil {
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
	d.Exec(t, `SELECT pg_terminate_backend(?)`, pid)

	b := lead("b")
	if got := read(b, 100); got[0].Seq != 3 || got[len(got)-1].Seq != 6 {
		t.Fatalf("b read seq %d to %d, want 3 to 6", got[0].Seq, got[len(got)-1].Seq)
	}
	if err := a.Flush(ctx); !errors.Is(err, outbox.ErrLostLead) {
		t.Fatalf("a's flush after b took over: %v, want outbox.ErrLostLead", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.Close()
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (7, 14)`)
	c := lead("c")
	if got := read(c, 100); got[0].Seq != 7 || got[0].PK != "7" {
		t.Fatalf("the next change is pk %s with seq %d, want pk 7 with seq 7", got[0].PK, got[0].Seq)
	}
}

// TestCursorAhead: a cursor ahead of the server's transaction ids
// (a database restored into another cluster) stops the reader with an
// error that says what to do, rather than taking every change for
// published.
func TestCursorAhead(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	d.Exec(t, `UPDATE restlive_cursor SET done = (x || ':' || x || ':')::pg_snapshot
		FROM (SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text AS x) ahead`)
	s, err := newBackend(d, "").Lead(context.Background())
	if err == nil {
		s.Close()
		t.Fatal("lead accepted a cursor ahead of the server")
	}
	if !strings.Contains(err.Error(), "restored into another cluster") {
		t.Fatalf("lead: %v", err)
	}
}

// TestPrune: rows go by whole reads, by age and number, the
// oldest first; the log's records go with them; the newest read and the
// rows not yet published stay, whatever the settings.
func TestPrune(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	ctx := context.Background()
	s, err := newBackend(d, "test").Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Four reads of ten rows, the first split by the batch size.
	for r := range 4 {
		for i := 1; i <= 10; i++ {
			d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, 10*r+i)
		}
		if got := capturetest.ReadAll(t, s, 4); len(got) != 10 {
			t.Fatalf("read %d: %d rows", r, len(got))
		}
	}
	prune := func(retention time.Duration, maxRows int64, want int64) {
		t.Helper()
		if n, err := s.Prune(ctx, retention, maxRows); err != nil || n != want {
			t.Fatalf("prune(%v, %d): %d rows, %v; want %d", retention, maxRows, n, err, want)
		}
	}
	left := func(rows, reads int) {
		t.Helper()
		if n, m := d.CountRows(t, "restlive_outbox"), d.CountRows(t, "restlive_reads"); n != rows || m != reads {
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
	d.Exec(t, `UPDATE restlive_reads SET read_at = now() - interval '2 hours' WHERE first_seq = 21`)
	prune(time.Hour, 1000, 10)
	left(10, 1)
	// Every read old: the newest stays, with its rows, and so do rows
	// not yet published.
	d.Exec(t, `UPDATE restlive_reads SET read_at = now() - interval '2 hours'`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (41, 14)`)
	prune(time.Nanosecond, 1, 0)
	left(11, 1)
}

// TestPruneKeepsLateCommits: a transaction in progress when a
// read began commits later; its row belongs to a later read, though its
// xid is older than rows pruned before it. Pruning keeps it, and History
// still answers with it.
func TestPruneKeepsLateCommits(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	ctx := context.Background()
	s, err := newBackend(d, "test").Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	late := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (100, 14)`)
	var published []live.Change
	read := func(ids ...int) {
		t.Helper()
		for _, id := range ids {
			d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, id)
		}
		published = append(published, outbox.Changes(nil, capturetest.ReadAll(t, s, 100))...)
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
	if n, err := s.Prune(ctx, time.Hour, 8); err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want 3", n, err)
	}
	h := d.NewHistory(t)
	head := capturetest.WaitHead(t, h, 10)
	got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: 3}, []string{"todolist.Task"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := capturetest.SameChanges(got, capturetest.Of(published, 3, "todolist.Task")); err != nil {
		t.Fatal(err)
	}
	if got[3].PK != "100" || got[3].Seq != 7 {
		t.Errorf("change 3 is %s with seq %d, want 100 with seq 7", got[3].PK, got[3].Seq)
	}
}

// TestHistoryCommitOrder: a transaction that took its id first
// and committed last comes after, in seq order, though its rows come
// first in (xid, id) order.
func TestHistoryCommitOrder(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	h := d.NewHistory(t)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	early := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	rec.Wait(t, 1)
	if err := early.Commit(); err != nil {
		t.Fatal(err)
	}
	published := rec.Wait(t, 2)
	head := capturetest.WaitHead(t, h, 2)
	for from := range uint64(3) {
		got, err := h.Since(context.Background(), live.Position{Epoch: head.Epoch, Seq: from}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := capturetest.SameChanges(got, capturetest.Of(published, from, "todolist.Task")); err != nil {
			t.Errorf("since %d: %v", from, err)
		}
	}
	if published[0].PK != "2" {
		t.Errorf("published %s first, want 2", published[0].PK)
	}
}

// TestHistoryUnread: Since returns the changes committed and not
// yet read as well, last, with seq 0; the reader then gives them a seq.
func TestHistoryUnread(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	h := d.NewHistory(t)
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.Wait(t, 1)
	stop()
	head := capturetest.WaitHead(t, h, 1)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
	for _, from := range []uint64{0, 1} {
		got, err := h.Since(context.Background(), live.Position{Epoch: head.Epoch, Seq: from}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := []live.Change{capturetest.Task(live.OpInsert, "2", nil, capturetest.M("list_id", "15"))}
		if from == 0 {
			want = append([]live.Change{rec.Snapshot()[0]}, want...)
		}
		if err := capturetest.SameChanges(got, want); err != nil {
			t.Errorf("since %d: %v", from, err)
		}
	}
}

// TestInstallDoesNotWaitForWriters: installing the triggers of one table
// does not wait for a transaction writing another: Install takes no lock
// on the outbox, which every captured write holds.
func TestInstallDoesNotWaitForWriters(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks, capturetest.Lists)
	d.Begin(t, `INSERT INTO lists (id) VALUES (1)`) // left open
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := capture.Install(ctx, d.DB, Dialect, capturetest.Tasks); err != nil {
		t.Fatalf("install while a captured write is open: %v", err)
	}
}
