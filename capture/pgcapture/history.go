package pgcapture

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

// On PostgreSQL the outbox rows carry no seq: the reader gives it as it
// reads (see the top of schema.go). What it writes down is its reads,
// in restlive_reads: the seq of each read's first change and the done
// snapshot it read after. A read's changes are the rows of transactions
// not visible in its done snapshot and visible in the next read's, in
// (xid, id) order, so seqs can be given again to any row still kept.
//
// Since reads, in one snapshot, the rows not visible in the done
// snapshot of the read that gave pos.Seq+1: every change after pos, some
// before it in the same read, and those committed but not yet read. It
// then gives each row its seq by finding its read: visibility only grows
// from one done snapshot to the next, so a binary search over them finds
// the last one that does not see the row.
func (dialect) Since(ctx context.Context, db *sql.DB, pos live.Position, models []string, limit int) ([]outbox.Row, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var c struct {
		epoch, done, edge string
		published         int64
		between           bool
	}
	if err := tx.QueryRowContext(ctx, `SELECT epoch, published, done::text, coalesce(reading, done)::text, reading IS NULL
		FROM restlive_cursor WHERE name = 'default'`).Scan(&c.epoch, &c.published, &c.done, &c.edge, &c.between); err != nil {
		return nil, err
	}
	if err := outbox.CheckPosition(pos, c.epoch, c.published); err != nil {
		return nil, err
	}
	reads, err := readsSince(ctx, tx, pos.Seq, limit)
	if err != nil {
		return nil, err
	}
	if c.between {
		// The next read, not begun: it will give published+1, after done.
		next, err := parseSnapshot(c.done)
		if err != nil {
			return nil, err
		}
		reads = append(reads, pgRead{first: c.published + 1, done: next, doneText: c.done})
	}
	if len(reads) == 0 || uint64(reads[0].first) > pos.Seq+1 {
		return nil, fmt.Errorf("position %d older than the oldest read kept: %w", pos.Seq, live.ErrHistoryGone)
	}
	if n := c.published - reads[0].first + 1; n > int64(limit) {
		return nil, outbox.ErrTooLong(n, limit)
	}
	edge, err := parseSnapshot(c.edge)
	if err != nil {
		return nil, err
	}
	rows, err := rowsAfter(ctx, tx, reads[0].doneText, models, limit)
	if err != nil {
		return nil, err
	}
	if c.between {
		reads = reads[:len(reads)-1] // its rows are those edge does not see
	}
	return sequence(rows, reads, edge, pos.Seq), nil
}

// A pgRead is a read of the log.
type pgRead struct {
	first    int64
	done     snapshot
	doneText string
}

// readsSince returns the logged reads from the one that gave seq pos+1
// on, in order. More than limit of them means more than limit changes.
func readsSince(ctx context.Context, tx *sql.Tx, pos uint64, limit int) ([]pgRead, error) {
	rows, err := tx.QueryContext(ctx, `SELECT first_seq, done::text FROM restlive_reads
		WHERE first_seq >= (SELECT max(first_seq) FROM restlive_reads WHERE first_seq <= $1)
		ORDER BY first_seq LIMIT $2`, int64(pos+1), limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var reads []pgRead
	for rows.Next() {
		var r pgRead
		if err := rows.Scan(&r.first, &r.doneText); err != nil {
			return nil, err
		}
		if r.done, err = parseSnapshot(r.doneText); err != nil {
			return nil, err
		}
		reads = append(reads, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(reads) > limit {
		return nil, outbox.ErrTooLong(int64(len(reads)), limit)
	}
	return reads, nil
}

// A pgRow is an outbox row read by History, with its transaction id;
// those of other models than wanted carry only what orders them.
type pgRow struct {
	outbox.Row
	xid    uint64
	wanted bool
}

// rowsAfter reads the rows of transactions not visible in done, in
// (xid, id) order: at most limit, or an error.
func rowsAfter(ctx context.Context, tx *sql.Tx, done string, models []string, limit int) ([]pgRow, error) {
	if models == nil {
		models = []string{} // not NULL, which = ANY would make NULL
	}
	rows, err := tx.QueryContext(ctx, `SELECT u.xid::text, u.model = ANY($2), u.model, u.pk, u.op,
			CASE WHEN u.model = ANY($2) THEN u.old END, CASE WHEN u.model = ANY($2) THEN u.new END
		FROM (`+unpublished("", "$3")+`) u ORDER BY u.xid, u.id`, done, models, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pgRow
	for rows.Next() {
		var w pgRow
		var xid string
		if err := rows.Scan(&xid, &w.wanted, &w.Model, &w.PK, &w.Op, &w.Old, &w.New); err != nil {
			return nil, err
		}
		if w.xid, err = strconv.ParseUint(xid, 10, 64); err != nil {
			return nil, fmt.Errorf("transaction id %q: %w", xid, err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, outbox.ErrTooLong(int64(len(out)), limit)
	}
	return out, nil
}

// sequence gives each row the seq its read gave it, or 0 if edge, the
// snapshot of the read under way or the last one, does not see it; and
// returns the wanted rows after seq pos, in seq order, then the unread.
func sequence(rows []pgRow, reads []pgRead, edge snapshot, pos uint64) []outbox.Row {
	given := make([]int64, len(reads)) // changes given per read so far
	for i := range rows {
		w := &rows[i]
		if !edge.visible(w.xid) || len(reads) == 0 {
			continue
		}
		// The first read whose done sees the row follows the row's read.
		j := sort.Search(len(reads), func(j int) bool { return reads[j].done.visible(w.xid) }) - 1
		if j < 0 {
			continue // seen by the first read's done: not read after it
		}
		w.Seq = uint64(reads[j].first + given[j])
		given[j]++
	}
	// By seq; the unread (seq 0) last, in (xid, id) order as they were.
	slices.SortStableFunc(rows, func(a, b pgRow) int {
		if (a.Seq == 0) != (b.Seq == 0) {
			return cmp.Compare(b.Seq, a.Seq)
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	out := make([]outbox.Row, 0, len(rows))
	for _, w := range rows {
		if w.wanted && (w.Seq == 0 || w.Seq > pos) {
			out = append(out, w.Row)
		}
	}
	return out
}

// A snapshot is a pg_snapshot: the transactions it sees as committed.
type snapshot struct {
	xmin, xmax uint64
	xip        []uint64 // in progress, sorted
}

// parseSnapshot parses pg_snapshot's text form, xmin:xmax:xip,xip,...
func parseSnapshot(s string) (snapshot, error) {
	var snap snapshot
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return snap, fmt.Errorf("bad snapshot %q", s)
	}
	var err error
	if snap.xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return snap, fmt.Errorf("bad snapshot %q: %w", s, err)
	}
	if snap.xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return snap, fmt.Errorf("bad snapshot %q: %w", s, err)
	}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			xid, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return snap, fmt.Errorf("bad snapshot %q: %w", s, err)
			}
			snap.xip = append(snap.xip, xid)
		}
		slices.Sort(snap.xip)
	}
	return snap, nil
}

// visible says what pg_visible_in_snapshot says: whether the transaction
// xid had completed when the snapshot was taken.
func (s snapshot) visible(xid uint64) bool {
	if xid < s.xmin {
		return true
	}
	if xid >= s.xmax {
		return false
	}
	_, inProgress := slices.BinarySearch(s.xip, xid)
	return !inProgress
}
