package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

// Since reads the rows after pos, in one read transaction: those
// published and those committed since, which the reader has yet to
// publish (a subscription loaded now already shows them, so a resume must
// answer for them). Seqs are rowids, handed out one after another in
// commit order and never reused (see sqliteSchema), so the published rows
// after pos are all there exactly when there are as many as the seqs
// between: fewer means some were pruned or deleted, whichever they were.
// Rows not yet published are never pruned.
func (sqliteDialect) Since(ctx context.Context, db *sql.DB, pos live.Position, models []string, limit int) ([]outbox.Row, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var epoch string
	var published, newest int64
	if err := tx.QueryRowContext(ctx,
		`SELECT epoch, published, (SELECT coalesce(max(seq), 0) FROM restlive_outbox) FROM restlive_cursor WHERE name = 'default'`).
		Scan(&epoch, &published, &newest); err != nil {
		return nil, err
	}
	if err := outbox.CheckPosition(pos, epoch, max(published, newest)); err != nil {
		return nil, err
	}
	from := int64(pos.Seq)
	if n := max(published, newest) - from; n > int64(limit) {
		return nil, outbox.ErrTooLong(n, limit)
	}
	if want := published - from; want > 0 {
		var have int64
		if err := tx.QueryRowContext(ctx,
			`SELECT count(*) FROM restlive_outbox WHERE seq > ? AND seq <= ?`, from, published).Scan(&have); err != nil {
			return nil, err
		}
		if have != want {
			return nil, fmt.Errorf("%d of the %d changes after %d pruned: %w", want-have, want, pos.Seq, live.ErrHistoryGone)
		}
	}
	names, err := json.Marshal(models)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, model, pk, op, old, new FROM restlive_outbox
		WHERE seq > ? AND model IN (SELECT value FROM json_each(?)) ORDER BY seq`,
		from, string(names))
	if err != nil {
		return nil, err
	}
	return outbox.ScanRows(rows)
}
