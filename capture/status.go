package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Status says whether this process reads the outbox now, how many changes
// it has published, and how many of its publishes failed (and were
// retried): for metrics. It may be called concurrently with Run.
func (r *Reader) Status() (leading bool, published, publishErrors uint64) {
	return r.leading.Load(), r.published.Load(), r.publishErrors.Load()
}

// ErrNoLag is Lag's error for a dialect that cannot count what its
// reader has yet to publish: pgwal's, whose slot tells its lag in bytes of
// write-ahead log instead (pgwal.Dialect.Status).
var ErrNoLag = errors.New("capture: this dialect does not report its lag in changes")

// A lagger is a dialect that can tell how far its reader is behind.
type lagger interface {
	Lag(ctx context.Context, db *sql.DB) (rows int64, oldest time.Time, err error)
}

// Lag returns how many committed changes the outbox holds that no reader
// has published yet, and how long the oldest of them has waited: what an
// operator watches to see the reader fall behind or stop. It reads the
// database, whichever process reads the outbox.
func (r *Reader) Lag(ctx context.Context) (rows int64, age time.Duration, err error) {
	l, ok := r.dialect.(lagger)
	if !ok {
		return 0, 0, ErrNoLag
	}
	rows, oldest, err := l.Lag(ctx, r.db)
	if err != nil {
		return 0, 0, fmt.Errorf("capture: read lag: %w", err)
	}
	if rows > 0 {
		age = max(time.Since(oldest), 0)
	}
	return rows, age, nil
}

// Lag reads the rows after the cursor. created_at is in seconds.
func (sqliteDialect) Lag(ctx context.Context, db *sql.DB) (int64, time.Time, error) {
	var rows int64
	var oldest sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT count(*), min(o.created_at) FROM restlive_outbox o
		WHERE o.seq > (SELECT published FROM restlive_cursor WHERE name = 'default')`).Scan(&rows, &oldest)
	return rows, time.Unix(oldest.Int64, 0), err
}
