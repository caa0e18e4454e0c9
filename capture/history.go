package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/restlive/restlive/capture/internal/outbox"
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
	if err := checkDialect(d); err != nil {
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
	p, err := h.dialect.Head(ctx, h.db)
	if err != nil {
		return live.Position{}, fmt.Errorf("capture: read history head: %w", err)
	}
	return p, nil
}

// Since returns the changes of models after since, in Seq order,
// including those committed but not yet published: a scope read now shows
// them. On SQLite they have their Seq; on PostgreSQL, whose reader gives
// seqs as it reads, they come last with Seq 0. limit bounds the changes of all models read to answer;
// zero or less means 10,000.
func (h *History) Since(ctx context.Context, since live.Position, models []string, limit int) ([]live.Change, error) {
	if limit <= 0 {
		limit = defaultHistoryLimit
	}
	rows, err := h.dialect.Since(ctx, h.db, since, models, limit)
	if err != nil {
		return nil, fmt.Errorf("capture: read history: %w", err)
	}
	return outbox.Changes(nil, rows), nil
}
