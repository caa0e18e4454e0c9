package pgcapture

import (
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

// Dialect is PostgreSQL's: pass it to capture.Install, capture.Remove,
// capture.NewReader and capture.NewHistory.
var Dialect capture.Dialect = dialect{}

// dialect is PostgreSQL's outbox. hooks is nil but in tests.
type dialect struct{ hooks *testHooks }

// testHooks let a test see what the reader does.
type testHooks struct {
	// listening is called when the reader starts waiting for a
	// notification.
	listening func()
}

func (dialect) String() string { return "postgres" }

func (dialect) Ready(ctx context.Context, db *sql.DB) error { return outbox.CursorReady(ctx, db) }

func (dialect) Head(ctx context.Context, db *sql.DB) (live.Position, error) {
	return outbox.CursorHead(ctx, db)
}

// Defaults: the triggers' NOTIFY wakes the reader, so polling is a
// safety net; while changes keep coming the reader stops listening and
// reads every millisecond, since a NOTIFY to a listener costs the
// writing transaction's commit more than the trigger does.
func (dialect) Defaults() outbox.Defaults {
	return outbox.Defaults{PollInterval: time.Second, BatchDelay: time.Millisecond}
}

// Install takes a transaction-level advisory lock first: concurrent
// installers' CREATE TABLE IF NOT EXISTS would otherwise race.
func (dialect) Install(ctx context.Context, db *sql.DB, tables []outbox.Table) error {
	stmts := slices.Clone(schema)
	for _, t := range tables {
		stmts = append(stmts, postgresTrigger(t)...)
	}
	return inLockedTx(ctx, db, stmts)
}

func (dialect) Remove(ctx context.Context, db *sql.DB, tables []string) error {
	var stmts []string
	for _, name := range tables {
		stmts = append(stmts, postgresDropTrigger(name)...)
	}
	return inLockedTx(ctx, db, stmts)
}

func inLockedTx(ctx context.Context, db *sql.DB, stmts []string) error {
	return outbox.InTx(ctx, db, "BEGIN", func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", installLockKey); err != nil {
			return err
		}
		return outbox.ExecAll(ctx, conn, stmts)
	})
}

func (d dialect) Backend(db *sql.DB, s outbox.Settings) outbox.Backend {
	return &postgresBackend{db: db, s: s, hooks: d.hooks}
}
