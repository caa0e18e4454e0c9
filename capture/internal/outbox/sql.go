package outbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/restlive/restlive/live"
)

// InTx runs f in one transaction on one connection, begun with begin.
func InTx(ctx context.Context, db *sql.DB, begin string, f func(context.Context, *sql.Conn) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The context may be what failed: roll back regardless.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := f(ctx, conn); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// ExecAll runs stmts in order, saying which one failed.
func ExecAll(ctx context.Context, conn *sql.Conn, stmts []string) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%w (in %.80q)", err, s)
		}
	}
	return nil
}

// DeleteUpTo runs a DELETE of at most 10,000 rows until it deletes
// fewer, so that pruning never holds the write lock (SQLite) or a long
// transaction (PostgreSQL) for long, and stops between chunks when run is
// cancelled.
func DeleteUpTo(run, ctx context.Context, db Execer, query string, args ...any) (int64, error) {
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

// An Execer is a *sql.DB or *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ScanRows reads seq, model, pk, op, old, new rows.
func ScanRows(rows *sql.Rows) ([]Row, error) {
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var w Row
		var seq int64
		if err := rows.Scan(&seq, &w.Model, &w.PK, &w.Op, &w.Old, &w.New); err != nil {
			return nil, fmt.Errorf("capture: read outbox: %w", err)
		}
		w.Seq = uint64(seq)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("capture: read outbox: %w", err)
	}
	return out, nil
}

// QuoteIdent quotes a checked, possibly schema-qualified, name.
func QuoteIdent(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + p + `"`
	}
	return strings.Join(parts, ".")
}

// QuoteLiteral quotes s as an SQL string literal (both dialects).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// ObjectName names a trigger or function of a table: prefix plus the
// table's name, shortened with a hash when it would pass PostgreSQL's
// 63-byte identifier limit (which would otherwise truncate two long names
// to the same one).
func ObjectName(prefix, table string) string {
	name := prefix + strings.ReplaceAll(table, ".", "__")
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(table))
	return name[:50] + "_" + hex.EncodeToString(sum[:6])
}

// CheckPosition returns an error wrapping live.ErrHistoryGone unless pos
// is of epoch and not ahead of published.
func CheckPosition(pos live.Position, epoch string, published int64) error {
	if pos.Epoch != epoch {
		return fmt.Errorf("position of epoch %q, the outbox's is %q: %w", pos.Epoch, epoch, live.ErrHistoryGone)
	}
	if pos.Seq > uint64(published) {
		return fmt.Errorf("position %d ahead of the last published, %d: %w", pos.Seq, published, live.ErrHistoryGone)
	}
	return nil
}

// ErrTooLong says that answering would read n changes, more than limit.
func ErrTooLong(n int64, limit int) error {
	return fmt.Errorf("%d or more changes to read, more than %d: %w", n, limit, live.ErrHistoryTooLong)
}

// CursorReady and CursorHead read restlive_cursor, the cursor of the
// outboxes of SQLite and PostgreSQL.
func CursorReady(ctx context.Context, db *sql.DB) error {
	if err := db.QueryRowContext(ctx, "SELECT 1 FROM restlive_cursor WHERE name = 'default'").Scan(new(int)); err != nil {
		return fmt.Errorf("outbox not installed (call capture.Install first): %w", err)
	}
	return nil
}

// CursorHead: see CursorReady.
func CursorHead(ctx context.Context, db *sql.DB) (live.Position, error) {
	var p live.Position
	var published int64
	if err := db.QueryRowContext(ctx,
		`SELECT epoch, published FROM restlive_cursor WHERE name = 'default'`).Scan(&p.Epoch, &published); err != nil {
		return live.Position{}, err
	}
	p.Seq = uint64(published)
	return p, nil
}
