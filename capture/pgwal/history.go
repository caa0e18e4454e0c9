package pgwal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

// History reads the log the reader writes, which holds every change it
// published, and every one it is about to: it logs each batch before it
// publishes it. What the log may lack is what has committed and not yet
// reached the reader, a few milliseconds' worth; a subscription loaded
// now already shows those, so Since must answer for them too.
//
// So Since first makes sure the log has everything committed before it
// was called: the reader records in the cursor a position, synced, before
// which every transaction is logged. If synced is behind the server's
// current position, Since writes a fence into the write-ahead log (a
// logical decoding message, in a transaction of its own) and waits for
// the reader to reach it: the stream sends transactions in commit order,
// so when the fence arrives every transaction that committed before it
// has, and the reader logs them and moves synced past the fence. Without
// a reader running, or behind by more than syncWait, Since returns an
// error, and the hub answers a resume with a snapshot.

// syncWait bounds how long Since waits for the reader.
const syncWait = 2 * time.Second

// Since returns the changes after pos: see above.
func (d *Dialect) Since(ctx context.Context, db *sql.DB, pos live.Position, models []string, limit int) ([]outbox.Row, error) {
	c, err := readCursor(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := outbox.CheckPosition(pos, c.epoch, c.seq); err != nil {
		return nil, err
	}
	if err := d.catchUp(ctx, db, c); err != nil {
		return nil, err
	}
	return readSince(ctx, db, pos, models, limit)
}

// catchUp returns once every transaction that committed before it was
// called is in the log.
func (d *Dialect) catchUp(ctx context.Context, db *sql.DB, c cursor) error {
	var now pglogrepl.LSN
	if err := db.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&now); err != nil {
		return fmt.Errorf("read the server's position: %w", err)
	}
	if c.synced >= now {
		return nil
	}
	// Committed synchronously, whatever the server's default: the stream
	// sends only what the server has flushed, and this flushes too every
	// commit before it.
	if _, err := db.ExecContext(ctx, `SELECT set_config('synchronous_commit', 'on', true),
		pg_logical_emit_message(true, '`+fencePrefix+`', $1::text)`, c.slot); err != nil {
		return fmt.Errorf("write a fence: %w", err)
	}
	if d.hooks != nil && d.hooks.fenced != nil {
		d.hooks.fenced()
	}
	deadline := time.Now().Add(syncWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		var synced bool
		if err := db.QueryRowContext(ctx, `SELECT synced >= $1::pg_lsn FROM restlive_wal_cursor WHERE name = 'default'`,
			now).Scan(&synced); err != nil {
			return fmt.Errorf("read restlive_wal_cursor: %w", err)
		}
		if synced {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the reader has not logged the changes committed %v ago (is one running?): "+
				"cannot tell what changed", syncWait)
		}
	}
}

// readSince reads the changes of models after pos from the log, in one
// snapshot with the cursor, which says how many there must be.
func readSince(ctx context.Context, db *sql.DB, pos live.Position, models []string, limit int) ([]outbox.Row, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	c, err := readCursor(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := outbox.CheckPosition(pos, c.epoch, c.seq); err != nil {
		return nil, err
	}
	if n := c.seq - int64(pos.Seq); n > int64(limit) {
		return nil, outbox.ErrTooLong(n, limit)
	} else if n == 0 {
		return nil, nil
	}
	rows, err := readLog(ctx, tx, `last_seq > $1`, int64(pos.Seq))
	if errors.Is(err, errLogGap) {
		return nil, fmt.Errorf("%v: %w", err, live.ErrHistoryGone)
	}
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || rows[0].Seq > pos.Seq+1 || rows[len(rows)-1].Seq != uint64(c.seq) {
		return nil, fmt.Errorf("the log no longer holds the changes after %d: %w", pos.Seq, live.ErrHistoryGone)
	}
	out := rows[:0]
	for _, r := range rows {
		if r.Seq > pos.Seq && slices.Contains(models, r.Model) {
			out = append(out, r)
		}
	}
	return out, nil
}
