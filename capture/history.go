package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/restlive/restlive/live"
)

// History tells which changes the outbox holds after a position of the
// change sequence, so that a subscription resumes from a client's offset
// on any process that shares the database (see live.History). Offsets
// stay resumable for as long as the reader keeps their changes: about
// Config.Retention, less when Config.MaxRows is reached first.
//
// Its methods may be called concurrently, with or without a Reader
// running in the process.
type History struct {
	db      *sql.DB
	dialect Dialect
}

var _ live.History = (*History)(nil)

// NewHistory returns the history of the outbox Install created in db.
func NewHistory(db *sql.DB, d Dialect) (*History, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("capture: NewHistory: db is nil")
	}
	return &History{db: db, dialect: d}, nil
}

// defaultHistoryLimit is what Since reads at most when given no limit.
const defaultHistoryLimit = 10_000

// Head returns the epoch of the outbox's sequence and the seq of the last
// change the reader published.
func (h *History) Head(ctx context.Context) (live.Position, error) {
	var p live.Position
	var published int64
	if err := h.db.QueryRowContext(ctx,
		`SELECT epoch, published FROM restlive_cursor WHERE name = 'default'`).Scan(&p.Epoch, &published); err != nil {
		return live.Position{}, fmt.Errorf("capture: read history head: %w", err)
	}
	p.Seq = uint64(published)
	return p, nil
}

// Since returns the changes of models after since, in Seq order. On
// SQLite they are exactly those published after since. On PostgreSQL
// they may include changes committed but not yet published, with Seq 0,
// at the end. limit bounds the changes of all models read to answer;
// zero or less means 10,000.
func (h *History) Since(ctx context.Context, since live.Position, models []string, limit int) ([]live.Change, error) {
	if limit <= 0 {
		limit = defaultHistoryLimit
	}
	var rows []row
	var err error
	switch h.dialect {
	case SQLite:
		rows, err = sqliteSince(ctx, h.db, since, models, limit)
	default:
		rows, err = postgresSince(ctx, h.db, since, models, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: read history: %w", err)
	}
	return changes(nil, rows), nil
}

// checkPosition returns an error wrapping live.ErrHistoryGone unless pos
// is of epoch and not ahead of published.
func checkPosition(pos live.Position, epoch string, published int64) error {
	if pos.Epoch != epoch {
		return fmt.Errorf("position of epoch %q, the outbox's is %q: %w", pos.Epoch, epoch, live.ErrHistoryGone)
	}
	if pos.Seq > uint64(published) {
		return fmt.Errorf("position %d ahead of the last published, %d: %w", pos.Seq, published, live.ErrHistoryGone)
	}
	return nil
}

func errTooLong(n int64, limit int) error {
	return fmt.Errorf("%d or more changes to read, more than %d: %w", n, limit, live.ErrHistoryTooLong)
}

// sqliteSince reads the rows after pos up to the cursor, in one read
// transaction. Seqs are rowids, handed out one after another and never
// reused (see sqliteSchema), so the rows after pos are all there exactly
// when there are as many as the seqs between: fewer means some were
// pruned or deleted, whichever they were.
func sqliteSince(ctx context.Context, db *sql.DB, pos live.Position, models []string, limit int) (_ []row, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var epoch string
	var published int64
	if err := tx.QueryRowContext(ctx,
		`SELECT epoch, published FROM restlive_cursor WHERE name = 'default'`).Scan(&epoch, &published); err != nil {
		return nil, err
	}
	if err := checkPosition(pos, epoch, published); err != nil {
		return nil, err
	}
	from, want := int64(pos.Seq), published-int64(pos.Seq)
	if want > int64(limit) {
		return nil, errTooLong(want, limit)
	}
	var have int64
	if err := tx.QueryRowContext(ctx,
		`SELECT count(*) FROM restlive_outbox WHERE seq > ? AND seq <= ?`, from, published).Scan(&have); err != nil {
		return nil, err
	}
	if have != want {
		return nil, fmt.Errorf("%d of the %d changes after %d pruned: %w", want-have, want, pos.Seq, live.ErrHistoryGone)
	}
	names, err := json.Marshal(models)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, model, pk, op, old, new FROM restlive_outbox
		WHERE seq > ? AND seq <= ? AND model IN (SELECT value FROM json_each(?)) ORDER BY seq`,
		from, published, string(names))
	if err != nil {
		return nil, err
	}
	return scanRows(rows)
}
