package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// sqliteInstall creates the outbox and cursor, adds to a cursor created
// by an earlier version what it lacks, and replaces the triggers of
// tables. SQLite's ADD COLUMN has no IF NOT EXISTS, and takes no random
// default: the epoch is set after.
func sqliteInstall(ctx context.Context, conn *sql.Conn, tables []Table) error {
	if err := execAll(ctx, conn, sqliteSchema); err != nil {
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
	return execAll(ctx, conn, stmts)
}

// sqliteTriggerSuffixes name a table's triggers: insert, update, update
// of the primary key (reported as a delete and an insert, since a change
// has one pk), delete, and the row an insert may replace.
var sqliteTriggerSuffixes = []string{"_i", "_u", "_k", "_d", "_r"}

func sqliteDropTriggers(table string) []string {
	var stmts []string
	for _, s := range sqliteTriggerSuffixes {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+quoteIdent(objectName("restlive_", table)+s))
	}
	return stmts
}

func sqliteTriggers(t Table) []string {
	name := func(suffix string) string { return quoteIdent(objectName("restlive_", t.Table) + suffix) }
	table, pk, model := quoteIdent(t.Table), quoteIdent(t.PK), quoteLiteral(t.Model)
	// json_object keeps SQLite's type: 14 stays a JSON number, which the
	// reader turns into "14" with live.Canonical. A boolean, stored as 0
	// or 1, becomes JSON true or false.
	fields := func(row string) string {
		var args []string
		for _, f := range t.Fields {
			v := row + "." + quoteIdent(f)
			if slices.Contains(t.BoolFields, f) {
				v = fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL WHEN %s THEN json('true') ELSE json('false') END", v, v)
			}
			args = append(args, quoteLiteral(f), v)
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

// sqliteBackend elects the reader with a lease in the cursor row: a
// process owns the outbox while lease_until is in the future, renews it
// as it works, and every write of the cursor checks that it still owns it,
// so a process that lost its lease (paused past its expiry) cannot move
// the cursor of the one that took over.
type sqliteBackend struct {
	db    *sql.DB
	cfg   *Config
	owner string
}

func (b *sqliteBackend) lead(ctx context.Context) (session, error) {
	now := time.Now()
	res, err := b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET owner = ?, lease_until = ?
		 WHERE name = 'default' AND (owner = ? OR lease_until < ?)`,
		b.owner, now.Add(b.cfg.Lease).UnixMilli(), b.owner, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("capture: take lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return nil, err // another process holds the lease
	}
	s := &sqliteSession{b: b, leaseUntil: now.Add(b.cfg.Lease)}
	var newest int64
	if err := b.db.QueryRowContext(ctx,
		`SELECT published, (SELECT coalesce(max(seq), 0) FROM restlive_outbox) FROM restlive_cursor WHERE name = 'default'`).
		Scan(&s.published, &newest); err != nil {
		s.close()
		return nil, fmt.Errorf("capture: read cursor: %w", err)
	}
	if s.published > newest {
		s.close()
		return nil, errCursorAhead(s.published, newest)
	}
	s.pending = s.published
	return s, nil
}

// errCursorAhead reports an outbox whose newest rows are gone, which the
// trigger restlive_outbox_keep_newest prevents unless the table was
// dropped or the trigger bypassed: new writes take seqs the cursor counts
// as published, and reading on would skip them without a word.
func errCursorAhead(published, newest int64) error {
	return fmt.Errorf("capture: restlive_cursor says seq %d is published, but the newest row of restlive_outbox "+
		"has seq %d: the outbox was emptied or recreated, and the changes written since then have seqs "+
		"the reader counts as published; to publish them and start the sequence again, "+
		"run DELETE FROM restlive_cursor and call capture.Install, which starts a new epoch", published, newest)
}

func (b *sqliteBackend) standby() time.Duration { return b.cfg.Lease / 5 }

type sqliteSession struct {
	b *sqliteBackend
	// published is the cursor as written, pending as published.
	published, pending int64
	flushedAt          time.Time
	leaseUntil         time.Time
}

// next reads one row more than limit, and returns it only when the
// batch would otherwise end between a replaced row and the insert that
// replaced it, which are published as one change.
func (s *sqliteSession) next(ctx context.Context, limit int) ([]row, error) {
	rows, err := s.b.db.QueryContext(ctx,
		`SELECT seq, model, pk, op, old, new FROM restlive_outbox WHERE seq > ? ORDER BY seq LIMIT ?`,
		s.pending, limit+1)
	if err != nil {
		return nil, fmt.Errorf("capture: read outbox: %w", err)
	}
	out, err := scanRows(rows)
	if len(out) > limit && out[limit-1].op != "R" {
		out = out[:limit]
	}
	return out, err
}

// valid reports whether the lease is certainly still ours: a margin of a
// quarter of the lease covers the time publishing takes.
func (s *sqliteSession) dirty() bool { return s.pending != s.published }

func (s *sqliteSession) valid() bool {
	return time.Until(s.leaseUntil) > s.b.cfg.Lease/4
}

func (s *sqliteSession) commit(ctx context.Context, seq uint64) error {
	s.pending = int64(seq)
	if time.Since(s.flushedAt) < cursorDelay {
		return nil
	}
	return s.flush(ctx)
}

// flush writes the cursor, renewing the lease and checking that it is
// still ours.
func (s *sqliteSession) flush(ctx context.Context) error {
	if s.pending == s.published {
		return nil
	}
	until := time.Now().Add(s.b.cfg.Lease)
	res, err := s.b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET published = ?, lease_until = ? WHERE name = 'default' AND owner = ?`,
		s.pending, until.UnixMilli(), s.b.owner)
	if err != nil {
		return fmt.Errorf("capture: write cursor: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errLostLead
	}
	s.published, s.leaseUntil, s.flushedAt = s.pending, until, time.Now()
	return nil
}

func (s *sqliteSession) renew(ctx context.Context) error {
	if time.Until(s.leaseUntil) > s.b.cfg.Lease*2/3 {
		return nil
	}
	until := time.Now().Add(s.b.cfg.Lease)
	res, err := s.b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET lease_until = ? WHERE name = 'default' AND owner = ?`,
		until.UnixMilli(), s.b.owner)
	if err != nil {
		return fmt.Errorf("capture: renew lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errLostLead
	}
	s.leaseUntil = until
	return nil
}

func (s *sqliteSession) wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, _ bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-nudged:
	case <-t.C:
	}
	return nil
}

func (s *sqliteSession) prune(run context.Context, retention time.Duration, maxRows int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(run), queryTimeout)
	defer cancel()
	// Rows are in seq order and roughly in created_at order: the first row
	// young enough to keep bounds what age allows to delete, found by
	// walking the old rows only.
	var latest int64
	if err := s.b.db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM restlive_outbox`).Scan(&latest); err != nil {
		return 0, fmt.Errorf("capture: prune outbox: %w", err)
	}
	cut := s.published
	var young int64
	err := s.b.db.QueryRowContext(ctx,
		`SELECT seq FROM restlive_outbox WHERE seq <= ? AND created_at >= ? ORDER BY seq LIMIT 1`,
		s.published, time.Now().Add(-retention).Unix()).Scan(&young)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, fmt.Errorf("capture: prune outbox: %w", err)
	default:
		cut = max(young-1, latest-maxRows)
	}
	// Never a row not yet published, nor the newest (see sqliteSchema).
	cut = min(cut, s.published, latest-1)
	return deleteUpTo(run, ctx, s.b.db, `DELETE FROM restlive_outbox WHERE seq IN
		(SELECT seq FROM restlive_outbox WHERE seq <= ? ORDER BY seq LIMIT 10000)`, cut)
}

// close gives the lease up, so a standby takes over at once instead of
// when the lease expires.
func (s *sqliteSession) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = s.b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET lease_until = 0 WHERE name = 'default' AND owner = ?`, s.b.owner)
}

// deleteUpTo deletes in chunks of 10,000 rows, so that pruning never
// holds the write lock (SQLite) or a long transaction (PostgreSQL) for
// long, and stops between chunks when run is cancelled.
func deleteUpTo(run, ctx context.Context, db execer, query string, args ...any) (int64, error) {
	var total int64
	for run.Err() == nil {
		res, err := db.ExecContext(ctx, query, args...)
		if err != nil {
			return total, fmt.Errorf("capture: prune outbox: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("capture: prune outbox: %w", err)
		}
		total += n
		if n < 10000 {
			break
		}
	}
	return total, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
