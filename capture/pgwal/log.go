package pgwal

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// A cursor is restlive_wal_cursor's row: see schema.
type cursor struct {
	epoch, slot string
	seq         int64
	lsn         pglogrepl.LSN
	ord         int
	synced      pglogrepl.LSN
}

func readCursor(ctx context.Context, q querier) (cursor, error) {
	var c cursor
	err := q.QueryRowContext(ctx, `SELECT epoch, slot, seq, lsn::text, ord, synced::text
		FROM restlive_wal_cursor WHERE name = 'default'`).Scan(&c.epoch, &c.slot, &c.seq, &c.lsn, &c.ord, &c.synced)
	if err != nil {
		return c, fmt.Errorf("capture: read restlive_wal_cursor: %w", err)
	}
	return c, nil
}

// log gives the batch its seqs and writes it to the log, and the cursor,
// in one statement, before anything of it is published: a reader that
// takes over after a crash publishes it again, with the same seqs. It
// writes only if the cursor is where this session left it: another
// reader, or an Install that started another epoch, may have moved it.
// A fence to answer makes it write the cursor even with no change.
func (s *session) log(ctx context.Context) ([]outbox.Row, error) {
	next := s.cur
	rows := make([]outbox.Row, len(s.batch))
	for i, c := range s.batch {
		c.row.Seq = uint64(s.cur.seq) + uint64(i) + 1
		rows[i] = c.row
		next.seq, next.lsn, next.ord = int64(c.row.Seq), c.lsn, c.ord
	}
	// Every transaction that committed before synced is logged now: those
	// before the one the stream is in, or all it has sent.
	next.synced = max(s.cur.synced, s.pos, s.fence)
	if s.txn != nil {
		next.synced = max(s.cur.synced, s.txn.lsn)
	}
	// The table list, if it changed, as of where the stream is: the
	// transaction it is in, which a session after this one reads again,
	// or after the last one.
	var tables any
	tablesAt := s.pos
	if s.txn != nil {
		tablesAt = s.txn.lsn
	}
	if s.tablesDirty {
		tables = encodeTables(s.tables)
	}
	var n int
	err := s.conn.QueryRowContext(ctx, `
		WITH c AS (
			UPDATE restlive_wal_cursor SET seq = $1, lsn = $2::pg_lsn, ord = $3, synced = $4::pg_lsn,
				tables = coalesce($8::json, tables),
				tables_lsn = CASE WHEN $8::json IS NULL THEN tables_lsn ELSE $9::pg_lsn END
			WHERE name = 'default' AND epoch = $5 AND seq = $6
			RETURNING 1
		),
		l AS (
			INSERT INTO restlive_wal_log (first_seq, last_seq, last_lsn, changes)
			SELECT $6 + 1, $1, $2::pg_lsn, $7::json WHERE $1 > $6 AND EXISTS (SELECT FROM c)
		)
		SELECT count(*) FROM c`,
		next.seq, next.lsn, next.ord, next.synced, s.cur.epoch, s.cur.seq, encodeLog(rows), tables, tablesAt).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("capture: write the log: %w", err)
	}
	if n == 0 {
		return nil, outbox.ErrLostLead
	}
	s.cur, s.batch, s.fence, s.pinged = next, s.batch[:0], 0, time.Now()
	if s.tablesDirty {
		s.tablesAt, s.tablesDirty = tablesAt, false
	}
	if h := s.b.d.hooks; h != nil && h.logged != nil && len(rows) > 0 {
		if err := h.logged(rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// encodeLog writes rows as the log keeps them: a JSON array of [model,
// pk, op, old, new], old and new as the triggers would write them.
func encodeLog(rows []outbox.Row) string {
	b := []byte{'['}
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for _, s := range []string{r.Model, r.PK, r.Op} {
			b = strconv.AppendQuote(b, s)
			b = append(b, ',')
		}
		b = appendRaw(b, r.Old)
		b = append(b, ',')
		b = appendRaw(b, r.New)
		b = append(b, ']')
	}
	return string(append(b, ']'))
}

func appendRaw(b, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return append(b, v...)
}

// decodeLog reads the changes of a log row, whose first seq is first.
func decodeLog(first int64, changes []byte) ([]outbox.Row, error) {
	var entries [][5]json.RawMessage
	if err := json.Unmarshal(changes, &entries); err != nil {
		return nil, fmt.Errorf("capture: log row %d: %w", first, err)
	}
	rows := make([]outbox.Row, len(entries))
	for i, e := range entries {
		r := &rows[i]
		r.Seq = uint64(first) + uint64(i)
		for j, dst := range []*string{&r.Model, &r.PK, &r.Op} {
			if err := json.Unmarshal(e[j], dst); err != nil {
				return nil, fmt.Errorf("capture: log row %d: %w", first, err)
			}
		}
		if string(e[3]) != "null" {
			r.Old = e[3]
		}
		if string(e[4]) != "null" {
			r.New = e[4]
		}
	}
	return rows, nil
}

// readLog reads the log rows that meet cond, in seq order.
func readLog(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, cond string, args ...any) ([]outbox.Row, error) {
	rows, err := q.QueryContext(ctx, `SELECT first_seq, last_seq, changes::text FROM restlive_wal_log
		WHERE `+cond+` ORDER BY first_seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("capture: read the log: %w", err)
	}
	defer rows.Close()
	var out []outbox.Row
	for rows.Next() {
		var first, last int64
		var changes []byte
		if err := rows.Scan(&first, &last, &changes); err != nil {
			return nil, fmt.Errorf("capture: read the log: %w", err)
		}
		got, err := decodeLog(first, changes)
		if err != nil {
			return nil, err
		}
		if int64(len(got)) != last-first+1 || len(out) > 0 && out[len(out)-1].Seq+1 != uint64(first) {
			return nil, fmt.Errorf("capture: the log's row %d does not follow on: %w", first, errLogGap)
		}
		out = append(out, got...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("capture: read the log: %w", err)
	}
	return out, nil
}

var errLogGap = fmt.Errorf("rows missing")

// Prune deletes the log's oldest rows, whole: those logged before
// retention, and those beyond the last maxRows changes, but never one
// the slot has not confirmed, which may be unpublished. Each statement
// deletes at most 10,000 rows.
func (s *session) Prune(run context.Context, retention time.Duration, maxRows int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(run), outbox.QueryTimeout)
	defer cancel()
	s.checkSlots(ctx)
	var total int64
	for run.Err() == nil {
		var rows, changes int64
		err := s.conn.QueryRowContext(ctx, `
			WITH d AS (
				DELETE FROM restlive_wal_log WHERE first_seq IN (
					SELECT first_seq FROM restlive_wal_log
					WHERE (first_seq < coalesce((SELECT first_seq FROM restlive_wal_log
							WHERE logged_at >= now() - $1 * interval '1 microsecond' ORDER BY first_seq LIMIT 1), $2 + 1)
						OR last_seq <= $2 - $3)
					AND last_lsn < $4::pg_lsn
					ORDER BY first_seq LIMIT 10000)
				RETURNING last_seq - first_seq + 1 AS n
			)
			SELECT count(*), coalesce(sum(n), 0) FROM d`,
			retention.Microseconds(), s.cur.seq, maxRows, s.sent).Scan(&rows, &changes)
		if err != nil {
			return total, fmt.Errorf("capture: prune the log: %w", err)
		}
		total += changes
		if rows < 10000 {
			break
		}
	}
	return total, nil
}

// checkSlots warns of what fills a disk silently: an unbounded
// max_slot_wal_keep_size (once), and slots of restlive that no reader
// streams from, which keep the server's log for as long as they exist.
func (s *session) checkSlots(ctx context.Context) {
	log := s.b.s.Logger
	s.b.warned.Do(func() {
		var size string
		if err := s.conn.QueryRowContext(ctx, `SHOW max_slot_wal_keep_size`).Scan(&size); err == nil && size == "-1" {
			log.WarnContext(ctx, "capture: max_slot_wal_keep_size is unlimited: a replication slot no reader streams from "+
				"(a deployment gone) keeps the write-ahead log until the disk fills; bound it, as in "+
				"ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'")
		}
	})
	rows, err := s.conn.QueryContext(ctx, `SELECT slot_name, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
		FROM pg_replication_slots WHERE NOT active AND slot_type = 'logical' AND slot_name LIKE 'restlive%' AND slot_name <> $1`, s.n.slot)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var retained int64
		if rows.Scan(&name, &retained) == nil {
			log.WarnContext(ctx, "capture: a replication slot no reader streams from keeps the write-ahead log; "+
				"if its deployment is gone, drop it: SELECT pg_drop_replication_slot('"+name+"')",
				"slot", name, "retained_bytes", retained)
		}
	}
}
