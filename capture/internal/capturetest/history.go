package capturetest

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/live"
)

// testHistory: after writes read in many reads (one change each), in
// one read split into batches by a reader that took over, and in reads
// of whatever came while writes kept coming, Since from every position
// returns exactly the changes published after it, with their seq, of the
// models asked for.
func testHistory(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks, Lists)
	h := d.NewHistory(t)
	rec := NewRecorder()
	_, stop := StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 3})
	n := 0
	write := func(query string, args ...any) {
		t.Helper()
		d.Exec(t, query, args...)
		n++
	}
	// One read each.
	for i := 1; i <= 4; i++ {
		write(`INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
		rec.Wait(t, n)
	}
	write(`INSERT INTO lists (id) VALUES (1)`)
	rec.Wait(t, n)
	// One read, split into batches by another reader.
	stop()
	tx, err := d.DB.Begin()
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
	StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 3})
	rec.Wait(t, n)
	// Reads of whatever came.
	kept := []int{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // 2 was deleted
	for i := 13; i <= 30; i++ {
		write(`UPDATE tasks SET list_id = ? WHERE id = ?`, 20+i%3, kept[i%len(kept)])
	}
	published := rec.Wait(t, n)
	head := WaitHead(t, h, published[n-1].Seq)
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
			if err := SameChanges(got, Of(published, from, models...)); err != nil {
				t.Fatalf("Since(%d, %v): %v", from, models, err)
			}
		}
	}
}

// testHistoryGone: Since cannot answer for a position of another epoch,
// one ahead of the head, or one whose changes were pruned, nor, once
// they are deleted by hand, for any before them; and says so.
func testHistoryGone(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks)
	h := d.NewHistory(t)
	rec := NewRecorder()
	_, stop := StartReader(t, d, capture.Config{Publisher: rec})
	for i := 1; i <= 10; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
		rec.Wait(t, i)
	}
	stop()
	head := WaitHead(t, h, 10)
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
	s := d.Lead(t, "test")
	if n, err := s.Prune(ctx, time.Hour, 4); err != nil || n != 6 {
		t.Fatalf("pruned %d (%v), want 6", n, err)
	}
	s.Close()
	// Reading the write-ahead log, History asks the reader to catch up
	// before it answers.
	StartReader(t, d, capture.Config{Publisher: NewRecorder()})
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
	d.Other(t, `DELETE FROM `+d.Store.History)
	if err := since(head.Epoch, 8); !errors.Is(err, live.ErrHistoryGone) {
		t.Errorf("since 8 after the rows were deleted: %v, want ErrHistoryGone", err)
	}
	if err := since(head.Epoch, 10); err != nil {
		t.Errorf("since the head after the rows were deleted: %v", err)
	}
}

// testHistoryTooLong: Since refuses to read more than about limit
// changes, of any model, rather than answer slowly.
func testHistoryTooLong(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks, Lists)
	h := d.NewHistory(t)
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec})
	for i := 1; i <= 20; i++ {
		d.Exec(t, `INSERT INTO lists (id) VALUES (?)`, i)
		rec.Wait(t, i)
	}
	head := WaitHead(t, h, 20)
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
}

// testHistoryWhileReading: with writes and the reader running, Since
// from a position returns at least every change published after it, as
// published, in seq order, whatever it returns besides.
func testHistoryWhileReading(t *testing.T, open Opener) {
	d := open(t)
	d.Install(t, Tasks)
	h := d.NewHistory(t)
	rec := NewRecorder()
	StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 5})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (0, 14)`)
	rec.Wait(t, 1)
	start := WaitHead(t, h, 1)

	const writers, writes = 3, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 1; i <= writes; i++ {
				id := w*writes + i
				if _, err := d.DB.Exec(d.Q(`INSERT INTO tasks (id, list_id) VALUES (?, ?)`), id, id%5); err != nil {
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
			rec.Wait(t, 1+writers*writes)
			return
		default:
		}
		head, err := h.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		published := Of(rec.Snapshot(), start.Seq, "todolist.Task")
		got, err := h.Since(ctx, start, []string{"todolist.Task"}, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		checkSuperset(t, got, published, head.Seq)
	}
}

// testHistoryEpoch: Install names the sequence once; a new outbox, or a
// cursor started again, is another epoch; a cursor installed by an
// earlier version gets one.
func testHistoryEpoch(t *testing.T, open Opener) {
	d := open(t)
	ctx := context.Background()
	epoch := func() string {
		t.Helper()
		head, err := d.NewHistory(t).Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !epochPattern.MatchString(head.Epoch) {
			t.Fatalf("epoch %q", head.Epoch)
		}
		return head.Epoch
	}
	d.Install(t, Tasks)
	first := epoch()
	d.Install(t, Tasks)
	if again := epoch(); again != first {
		t.Errorf("epoch %q after installing again, was %q", again, first)
	}
	d.Exec(t, `DELETE FROM `+d.Store.Cursor)
	d.Install(t, Tasks)
	if second := epoch(); second == first {
		t.Errorf("a new cursor kept the epoch %q", first)
	}
	if d.Store.Outbox {
		d.Exec(t, `ALTER TABLE restlive_cursor DROP COLUMN epoch`)
		d.Install(t, Tasks)
		epoch()
	}

	other := open(t)
	other.Install(t, Tasks)
	h, err := other.NewHistory(t).Head(ctx)
	if err != nil || h.Epoch == epoch() {
		t.Errorf("another database's epoch %q, %v", h.Epoch, err)
	}
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
		if p, ok := bySeq[c.Seq]; ok && !SameChange(c, p) {
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
