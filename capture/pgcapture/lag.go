package pgcapture

import (
	"context"
	"database/sql"
	"time"
)

// Lag reads the rows of the transactions the cursor's last complete read
// did not see: those of a read under way count as waiting until it is
// done.
func (dialect) Lag(ctx context.Context, db *sql.DB) (int64, time.Time, error) {
	var rows int64
	var oldest sql.NullTime
	err := db.QueryRowContext(ctx, `WITH c AS (SELECT done FROM restlive_cursor WHERE name = 'default')
		SELECT count(*), min(o.created_at) FROM restlive_outbox o, c
		WHERE o.xid = ANY(ARRAY(SELECT pg_snapshot_xip(c.done))) OR o.xid >= pg_snapshot_xmax(c.done)`).Scan(&rows, &oldest)
	return rows, oldest.Time, err
}
