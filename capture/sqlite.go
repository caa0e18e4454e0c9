package capture

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

// On SQLite the outbox's seq is the rowid. Writers are serialized by the
// database, so rowids are handed out in commit order and a reader that
// sees seq n has seen every committed seq below it: reading seq > cursor
// is sound. A new rowid is one more than the highest, so the newest row
// is never deleted: were it deleted, its seq would be reused, below the
// cursor, and the changes given it never published. Pruning keeps it, and
// a trigger keeps it from every other DELETE, such as an operator's
// DELETE FROM restlive_outbox. (AUTOINCREMENT would do the same at the
// cost of a write to sqlite_sequence in every captured transaction; the
// trigger costs a lookup of the newest row per row deleted.)
var sqliteSchema = []string{
	`CREATE TABLE IF NOT EXISTS restlive_outbox (
		seq INTEGER PRIMARY KEY,
		created_at INTEGER NOT NULL DEFAULT (unixepoch()),
		model TEXT NOT NULL,
		pk TEXT NOT NULL,
		op TEXT NOT NULL,
		old TEXT,
		new TEXT
	)`,
	// The cursor row also holds the reader's lease: the process named by
	// owner reads the outbox until lease_until (Unix milliseconds). epoch
	// names the sequence (see History); set by sqliteInstall.
	`CREATE TABLE IF NOT EXISTS restlive_cursor (
		name TEXT PRIMARY KEY,
		published INTEGER NOT NULL DEFAULT 0,
		owner TEXT NOT NULL DEFAULT '',
		lease_until INTEGER NOT NULL DEFAULT 0,
		epoch TEXT NOT NULL DEFAULT ''
	)`,
	`INSERT INTO restlive_cursor (name) VALUES ('default') ON CONFLICT (name) DO NOTHING`,
	`CREATE TRIGGER IF NOT EXISTS restlive_outbox_keep_newest BEFORE DELETE ON restlive_outbox
		WHEN NOT EXISTS (SELECT 1 FROM restlive_outbox WHERE seq > OLD.seq)
		BEGIN SELECT RAISE(IGNORE); END`,
}

// sqliteDialect is SQLite's outbox: see SQLite.
type sqliteDialect struct{}

func (sqliteDialect) String() string { return "sqlite" }

func (sqliteDialect) Ready(ctx context.Context, db *sql.DB) error { return outbox.CursorReady(ctx, db) }

func (sqliteDialect) Head(ctx context.Context, db *sql.DB) (live.Position, error) {
	return outbox.CursorHead(ctx, db)
}

// Defaults: the reader is woken only by polls and Nudge, so it polls
// often, and reads at once when woken.
func (sqliteDialect) Defaults() outbox.Defaults {
	return outbox.Defaults{PollInterval: 5 * time.Millisecond}
}

// Install runs in a BEGIN IMMEDIATE transaction: a deferred one that
// reads the schema first could fail with SQLITE_BUSY when upgrading to a
// write, busy_timeout or not.
func (sqliteDialect) Install(ctx context.Context, db *sql.DB, tables []outbox.Table) error {
	return outbox.InTx(ctx, db, "BEGIN IMMEDIATE", func(ctx context.Context, conn *sql.Conn) error {
		return sqliteInstall(ctx, conn, tables)
	})
}

func (sqliteDialect) Remove(ctx context.Context, db *sql.DB, tables []string) error {
	var stmts []string
	for _, name := range tables {
		stmts = append(stmts, sqliteDropTriggers(name)...)
	}
	return outbox.InTx(ctx, db, "BEGIN IMMEDIATE", func(ctx context.Context, conn *sql.Conn) error {
		return outbox.ExecAll(ctx, conn, stmts)
	})
}

func (sqliteDialect) Backend(db *sql.DB, s outbox.Settings) outbox.Backend {
	return &sqliteBackend{db: db, s: s}
}

// sqliteInstall creates the outbox and cursor, adds to a cursor created
// by an earlier version what it lacks, and replaces the triggers of
// tables. SQLite's ADD COLUMN has no IF NOT EXISTS, and takes no random
// default: the epoch is set after.
func sqliteInstall(ctx context.Context, conn *sql.Conn, tables []outbox.Table) error {
	if err := outbox.ExecAll(ctx, conn, sqliteSchema); err != nil {
		return err
	}
	var hasEpoch bool
	if err := conn.QueryRowContext(ctx,
		`SELECT count(*) > 0 FROM pragma_table_info('restlive_cursor') WHERE name = 'epoch'`).Scan(&hasEpoch); err != nil {
		return err
	}
	stmts := []string{`UPDATE restlive_cursor SET epoch = lower(hex(randomblob(8))) WHERE epoch = ''`}
	if !hasEpoch {
		stmts = slices.Insert(stmts, 0, `ALTER TABLE restlive_cursor ADD COLUMN epoch TEXT NOT NULL DEFAULT ''`)
	}
	for _, t := range tables {
		stmts = append(stmts, sqliteDropTriggers(t.Table)...)
		stmts = append(stmts, sqliteTriggers(t)...)
	}
	return outbox.ExecAll(ctx, conn, stmts)
}

// sqliteTriggerSuffixes name a table's triggers: insert, update, update
// of the primary key (reported as a delete and an insert, since a change
// has one pk), delete, and the row an insert may replace.
var sqliteTriggerSuffixes = []string{"_i", "_u", "_k", "_d", "_r"}

func sqliteDropTriggers(table string) []string {
	var stmts []string
	for _, s := range sqliteTriggerSuffixes {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+outbox.QuoteIdent(outbox.ObjectName("restlive_", table)+s))
	}
	return stmts
}

func sqliteTriggers(t outbox.Table) []string {
	name := func(suffix string) string { return outbox.QuoteIdent(outbox.ObjectName("restlive_", t.Table) + suffix) }
	table, pk, model := outbox.QuoteIdent(t.Table), outbox.QuoteIdent(t.PK), outbox.QuoteLiteral(t.Model)
	// json_object keeps SQLite's type: 14 stays a JSON number, which the
	// reader turns into "14" with live.Canonical. A boolean, stored as 0
	// or 1, becomes JSON true or false.
	fields := func(row string) string {
		var args []string
		for _, f := range t.Fields {
			v := row + "." + outbox.QuoteIdent(f)
			if slices.Contains(t.BoolFields, f) {
				v = fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL WHEN %s THEN json('true') ELSE json('false') END", v, v)
			}
			args = append(args, outbox.QuoteLiteral(f), v)
		}
		return "json_object(" + strings.Join(args, ", ") + ")"
	}
	insert := func(row, op, old, new string) string {
		return fmt.Sprintf("INSERT INTO restlive_outbox (model, pk, op, old, new) VALUES (%s, CAST(%s.%s AS TEXT), '%s', %s, %s);",
			model, row, pk, op, old, new)
	}
	// INSERT OR REPLACE deletes the row it replaces without firing a
	// delete trigger (unless recursive_triggers is on), so only a trigger
	// before the insert sees the old row: it records it as op R, and the
	// reader makes it and the insert that follows it one update (see
	// mergeReplaced). Skipping the insert in the trigger after would cost
	// every insert a look at the outbox: about 15us more each, against
	// 6us for this lookup of the pk.
	const old = "restlive_old"
	replaced := fmt.Sprintf("INSERT INTO restlive_outbox (model, pk, op, old) SELECT %s, CAST(%s.%s AS TEXT), 'R', %s FROM %s AS %s WHERE %s.%s = NEW.%s;",
		model, old, pk, fields(old), table, old, old, pk, pk)
	return []string{
		fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT ON %s BEGIN %s END", name("_r"), table, replaced),
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN %s END",
			name("_i"), table, insert("NEW", "I", "NULL", fields("NEW"))),
		fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s WHEN OLD.%s IS NEW.%s BEGIN %s END",
			name("_u"), table, pk, pk, insert("NEW", "U", fields("OLD"), fields("NEW"))),
		fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s WHEN OLD.%s IS NOT NEW.%s BEGIN %s %s END",
			name("_k"), table, pk, pk, insert("OLD", "D", fields("OLD"), "NULL"), insert("NEW", "I", "NULL", fields("NEW"))),
		fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN %s END",
			name("_d"), table, insert("OLD", "D", fields("OLD"), "NULL")),
	}
}
