// Package outbox is what package capture asks of a database, and what
// its dialects (capture.SQLite, pgcapture.Dialect) share to answer: the
// Dialect a database implements, and helpers to write one. It is
// internal so that capture's public surface stays its own, and so that a
// program links only the dialects it imports.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/restlive/restlive/live"
)

// A Dialect is one database's outbox: its schema and triggers, its
// reader's election and reads, and its history.
type Dialect interface {
	// String names the database in logs: "sqlite", "postgres".
	String() string
	// Defaults are the reader's settings that depend on the database.
	Defaults() Defaults
	// Ready returns an error that says what to do when the capture is
	// not installed in db or cannot run there; the reader checks it
	// before it starts.
	Ready(ctx context.Context, db *sql.DB) error
	// Install creates the outbox if need be and installs the triggers of
	// tables, checked already, in one transaction.
	Install(ctx context.Context, db *sql.DB, tables []Table) error
	// Remove drops the triggers of tables, whose names are checked.
	Remove(ctx context.Context, db *sql.DB, tables []string) error
	// Backend returns what elects this process the reader and reads.
	Backend(db *sql.DB, s Settings) Backend
	// Head returns the sequence's epoch and the seq of the last change
	// published (see live.History).
	Head(ctx context.Context, db *sql.DB) (live.Position, error)
	// Since returns the rows of models after pos, in seq order (see
	// live.History). Errors wrap live.ErrHistoryGone and
	// live.ErrHistoryTooLong as that says.
	Since(ctx context.Context, db *sql.DB, pos live.Position, models []string, limit int) ([]Row, error)
}

// Defaults are a Dialect's defaults for capture.Config.
type Defaults struct {
	PollInterval, BatchDelay time.Duration
}

// Settings are what a Backend needs of the reader's configuration.
type Settings struct {
	// Lease: see capture.Config.
	Lease time.Duration
	// Logger receives the backend's events.
	Logger *slog.Logger
	// Owner names this reader among the processes.
	Owner string
}

// A Table is capture.Table, checked.
type Table struct {
	Model, Table, PK   string
	Fields, BoolFields []string
}

// A Row is one outbox row.
type Row struct {
	Seq           uint64
	Model, PK, Op string
	Old, New      []byte
}

// A Backend elects the reader and opens its session.
type Backend interface {
	// Lead makes this process the reader and returns its session, or nil
	// without an error if another process is the reader.
	Lead(ctx context.Context) (Session, error)
	// Standby is how long to wait before trying Lead again.
	Standby() time.Duration
}

// A Session is one spell as the reader.
type Session interface {
	// Next returns the next committed rows after the cursor, in seq
	// order: about limit of them.
	Next(ctx context.Context, limit int) ([]Row, error)
	// Valid reports whether this process is still certainly the reader.
	Valid() bool
	// Commit records seq as the last published. It may write the cursor
	// later, when Flush is called or with the next read.
	Commit(ctx context.Context, seq uint64) error
	// Flush writes the cursor if Commit has not.
	Flush(ctx context.Context) error
	// Dirty reports whether Flush has something to write.
	Dirty() bool
	// Renew keeps the lead, returning ErrLostLead if it was lost.
	Renew(ctx context.Context) error
	// Wait returns when new rows may be there: after d, on nudged, or
	// sooner if the database says so. busy says the last read found
	// rows; a session may then return at once, leaving the reader to read
	// again after BatchDelay.
	Wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, busy bool) error
	// Prune deletes published rows older than retention or beyond
	// maxRows. It stops between statements when ctx is cancelled, but
	// does not cancel them.
	Prune(ctx context.Context, retention time.Duration, maxRows int64) (int64, error)
	// Close ends the session, giving up the lead.
	Close()
}

// ErrLostLead reports that another process became the reader.
var ErrLostLead = errors.New("capture: lost the outbox lease")

// QueryTimeout bounds each statement of the reader.
const QueryTimeout = 30 * time.Second

// CursorDelay bounds how long the cursor may lag behind what was
// published while the reader is busy. Writing it after every batch would
// cost SQLite a write transaction per batch, as many as the application's
// own when it writes one row at a time.
const CursorDelay = 10 * time.Millisecond
