package capture

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

func newHistory(t testing.TB, d *testDB) *History {
	t.Helper()
	h, err := NewHistory(d.db, d.dialect)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitHead waits until the cursor says seq was published: the reader
// writes it a moment after it publishes.
func waitHead(t testing.TB, h *History, seq uint64) live.Position {
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

// of returns the changes of models among changes, with a Seq above from.
func of(changes []live.Change, from uint64, models ...string) []live.Change {
	var out []live.Change
	for _, c := range changes {
		for _, m := range models {
			if c.Model == m && c.Seq > from {
				out = append(out, c)
			}
		}
	}
	return out
}

// sameChanges compares changes, Seq included.
func sameChanges(got, want []live.Change) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d changes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !sameChange(got[i], want[i]) {
			return fmt.Errorf("change %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
	return nil
}

// TestHistory: after writes read in many reads (one change each), in
// one read split into batches by a reader that took over, and in reads
// of whatever came while writes kept coming, Since from every position
// returns exactly the changes published after it, with their seq, of the
// models asked for.
func TestHistory(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks, lists)
		h := newHistory(t, d)
		rec := newRecorder()
		_, stop := startReader(t, d, Config{Publisher: rec, BatchSize: 3})
		n := 0
		write := func(query string, args ...any) {
			t.Helper()
			d.exec(t, query, args...)
			n++
		}
		// One read each.
		for i := 1; i <= 4; i++ {
			write(`INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
			rec.wait(t, n)
		}
		write(`INSERT INTO lists (id) VALUES (1)`)
		rec.wait(t, n)
		// One read, split into batches by another reader.
		stop()
		tx, err := d.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`INSERT INTO tasks (id, list_id) VALUES (5, 15)`,
			`UPDATE tasks SET list_id = 15 WHERE id = 1`,
			`DELETE FROM tasks WHERE id = 2`,
		} {
			if _, err := tx.Exec(q); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		for i := 6; i <= 12; i++ {
			write(`INSERT INTO tasks (id, list_id) VALUES (?, 16)`, i)
		}
		write(`INSERT INTO lists (id) VALUES (2)`)
		startReader(t, d, Config{Publisher: rec, BatchSize: 3})
		rec.wait(t, n)
		// Reads of whatever came.
		kept := []int{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // 2 was deleted
		for i := 13; i <= 30; i++ {
			write(`UPDATE tasks SET list_id = ? WHERE id = ?`, 20+i%3, kept[i%len(kept)])
		}
		published := rec.wait(t, n)
		head := waitHead(t, h, published[n-1].Seq)
		if head.Seq != published[n-1].Seq {
			t.Fatalf("head %d, last published %d", head.Seq, published[n-1].Seq)
		}

		ctx := context.Background()
		for from := uint64(0); from <= head.Seq; from++ {
			pos := live.Position{Epoch: head.Epoch, Seq: from}
			for _, models := range [][]string{{"todolist.Task"}, {"todolist.List"}, {"todolist.Task", "todolist.List"}, nil} {
				got, err := h.Since(ctx, pos, models, 1000)
				if err != nil {
					t.Fatalf("Since(%d, %v): %v", from, models, err)
				}
				if err := sameChanges(got, of(published, from, models...)); err != nil {
					t.Fatalf("Since(%d, %v): %v", from, models, err)
				}
			}
		}
	})
}

// TestHistoryGone: Since cannot answer for a position of another epoch,
// one ahead of the head, or one whose changes were pruned, nor, once
// they are deleted by hand, for any before them; and says so.
func TestHistoryGone(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		h := newHistory(t, d)
		rec := newRecorder()
		_, stop := startReader(t, d, Config{Publisher: rec})
		for i := 1; i <= 10; i++ {
			d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
			rec.wait(t, i)
		}
		stop()
		head := waitHead(t, h, 10)
		ctx := context.Background()
		since := func(epoch string, seq uint64) error {
			t.Helper()
			_, err := h.Since(ctx, live.Position{Epoch: epoch, Seq: seq}, []string{"todolist.Task"}, 1000)
			return err
		}
		for _, tt := range []struct {
			name  string
			epoch string
			seq   uint64
		}{
			{"another epoch", "x" + head.Epoch[1:], 5},
			{"no epoch", "", 5},
			{"ahead", head.Epoch, 11},
		} {
			if err := since(tt.epoch, tt.seq); !errors.Is(err, live.ErrHistoryGone) {
				t.Errorf("%s: %v, want ErrHistoryGone", tt.name, err)
			}
		}

		// Prune to 4 rows: the reads of one change each from 7 on stay.
		cfg := Config{Publisher: rec}
		cfg.setDefaults(d.dialect)
		var be backend = &sqliteBackend{db: d.db, cfg: &cfg, owner: "test"}
		if d.dialect == Postgres {
			be = &postgresBackend{db: d.db, cfg: &cfg, owner: "test"}
		}
		s, err := be.lead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.prune(ctx, time.Hour, 4); err != nil || n != 6 {
			t.Fatalf("pruned %d (%v), want 6", n, err)
		}
		s.close()
		for seq := uint64(0); seq <= 10; seq++ {
			err := since(head.Epoch, seq)
			if seq < 6 && !errors.Is(err, live.ErrHistoryGone) {
				t.Errorf("since %d, pruned: %v, want ErrHistoryGone", seq, err)
			}
			if seq >= 6 && err != nil {
				t.Errorf("since %d, kept: %v", seq, err)
			}
		}

		// Rows deleted by hand: what was after 8 is no longer known, but
		// that nothing came after 10 is.
		d.other(t, `DELETE FROM restlive_outbox`)
		if err := since(head.Epoch, 8); !errors.Is(err, live.ErrHistoryGone) {
			t.Errorf("since 8 after the rows were deleted: %v, want ErrHistoryGone", err)
		}
		if err := since(head.Epoch, 10); err != nil {
			t.Errorf("since the head after the rows were deleted: %v", err)
		}
	})
}

// TestHistoryTooLong: Since refuses to read more than about limit
// changes, of any model, rather than answer slowly.
func TestHistoryTooLong(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks, lists)
		h := newHistory(t, d)
		rec := newRecorder()
		startReader(t, d, Config{Publisher: rec})
		for i := 1; i <= 20; i++ {
			d.exec(t, `INSERT INTO lists (id) VALUES (?)`, i)
			rec.wait(t, i)
		}
		head := waitHead(t, h, 20)
		ctx := context.Background()
		for _, tt := range []struct {
			from  uint64
			limit int
			err   error
		}{
			{0, 10, live.ErrHistoryTooLong},
			{9, 10, live.ErrHistoryTooLong},
			{10, 10, nil},
			{15, 10, nil},
			{0, 20, nil},
			{20, 1, nil},
		} {
			got, err := h.Since(ctx, live.Position{Epoch: head.Epoch, Seq: tt.from}, []string{"todolist.Task"}, tt.limit)
			if !errors.Is(err, tt.err) || len(got) != 0 {
				t.Errorf("Since(%d, limit %d) = %d changes, %v; want %v", tt.from, tt.limit, len(got), err, tt.err)
			}
		}
	})
}

// TestHistoryWhileReading: with writes and the reader running, Since
// from a position returns at least every change published after it, as
// published, in seq order, whatever it returns besides.
func TestHistoryWhileReading(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		d.install(t, tasks)
		h := newHistory(t, d)
		rec := newRecorder()
		startReader(t, d, Config{Publisher: rec, BatchSize: 5})
		d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (0, 14)`)
		rec.wait(t, 1)
		start := waitHead(t, h, 1)

		const writers, writes = 3, 40
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := 1; i <= writes; i++ {
					id := w*writes + i
					if _, err := d.db.Exec(d.q(`INSERT INTO tasks (id, list_id) VALUES (?, ?)`), id, id%5); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		ctx := context.Background()
		for checks := 0; ; checks++ {
			select {
			case <-done:
				if checks == 0 {
					t.Fatal("no check ran while writing")
				}
				rec.wait(t, 1+writers*writes)
				return
			default:
			}
			head, err := h.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			published := of(rec.snapshot(), start.Seq, "todolist.Task")
			got, err := h.Since(ctx, start, []string{"todolist.Task"}, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			checkSuperset(t, got, published, head.Seq)
		}
	})
}

// checkSuperset checks that got holds every change of published up to
// seq head, and that its changes with a seq are in order and each as
// published.
func checkSuperset(t *testing.T, got, published []live.Change, head uint64) {
	t.Helper()
	bySeq := map[uint64]live.Change{}
	for _, c := range published {
		bySeq[c.Seq] = c
	}
	seen := map[uint64]bool{}
	var last uint64
	for _, c := range got {
		if c.Seq == 0 {
			continue
		}
		if c.Seq <= last {
			t.Fatalf("seq %d after %d", c.Seq, last)
		}
		last = c.Seq
		if p, ok := bySeq[c.Seq]; ok && !sameChange(c, p) {
			t.Fatalf("seq %d: got %+v, published %+v", c.Seq, c, p)
		}
		seen[c.Seq] = true
	}
	for _, c := range published {
		if c.Seq <= head && !seen[c.Seq] {
			t.Fatalf("change %+v, published before head %d, missing from %d changes", c, head, len(got))
		}
	}
}

var epochPattern = regexp.MustCompile(`^[0-9a-z]{1,32}$`)

// TestHistoryEpoch: Install names the sequence once; a new outbox, or a
// cursor started again, is another epoch; a cursor installed by an
// earlier version gets one.
func TestHistoryEpoch(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		ctx := context.Background()
		epoch := func() string {
			t.Helper()
			head, err := newHistory(t, d).Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !epochPattern.MatchString(head.Epoch) {
				t.Fatalf("epoch %q", head.Epoch)
			}
			return head.Epoch
		}
		d.install(t, tasks)
		first := epoch()
		d.install(t, tasks)
		if again := epoch(); again != first {
			t.Errorf("epoch %q after installing again, was %q", again, first)
		}
		d.exec(t, `DELETE FROM restlive_cursor`)
		d.install(t, tasks)
		if second := epoch(); second == first {
			t.Errorf("a new cursor kept the epoch %q", first)
		}
		d.exec(t, `ALTER TABLE restlive_cursor DROP COLUMN epoch`)
		d.install(t, tasks)
		epoch()

		other := openSQLite(t)
		if d.dialect == Postgres {
			other = openPostgres(t)
		}
		other.install(t, tasks)
		h, err := newHistory(t, other).Head(ctx)
		if err != nil || h.Epoch == epoch() {
			t.Errorf("another database's epoch %q, %v", h.Epoch, err)
		}
	})
}

// TestPostgresHistoryCommitOrder: a transaction that took its id first
// and committed last comes after, in seq order, though its rows come
// first in (xid, id) order.
func TestPostgresHistoryCommitOrder(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	h := newHistory(t, d)
	rec := newRecorder()
	startReader(t, d, Config{Publisher: rec})
	early := d.begin(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	rec.wait(t, 1)
	if err := early.Commit(); err != nil {
		t.Fatal(err)
	}
	published := rec.wait(t, 2)
	head := waitHead(t, h, 2)
	for from := range uint64(3) {
		got, err := h.Since(context.Background(), live.Position{Epoch: head.Epoch, Seq: from}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameChanges(got, of(published, from, "todolist.Task")); err != nil {
			t.Errorf("since %d: %v", from, err)
		}
	}
	if published[0].PK != "2" {
		t.Errorf("published %s first, want 2", published[0].PK)
	}
}

// TestPostgresHistoryUnread: Since returns the changes committed and not
// yet read as well, last, with seq 0; the reader then gives them a seq.
func TestPostgresHistoryUnread(t *testing.T) {
	d := openPostgres(t)
	d.install(t, tasks)
	h := newHistory(t, d)
	rec := newRecorder()
	_, stop := startReader(t, d, Config{Publisher: rec})
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.wait(t, 1)
	stop()
	head := waitHead(t, h, 1)
	d.exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
	for _, from := range []uint64{0, 1} {
		got, err := h.Since(context.Background(), live.Position{Epoch: head.Epoch, Seq: from}, []string{"todolist.Task"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := []live.Change{task(live.OpInsert, "2", nil, m("list_id", "15"))}
		if from == 0 {
			want = append([]live.Change{rec.snapshot()[0]}, want...)
		}
		if err := sameChanges(got, want); err != nil {
			t.Errorf("since %d: %v", from, err)
		}
	}
}
