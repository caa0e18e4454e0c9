package capture

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Dialect names the SQL database behind a *sql.DB. Its values are the
// names GORM's dialectors report, so capture.Dialect(db.Dialector.Name())
// works.
type Dialect string

// The supported databases.
const (
	// SQLite through the pure-Go driver github.com/glebarez/go-sqlite
	// (database/sql driver name "sqlite"), as GORM's
	// github.com/glebarez/sqlite opens it.
	SQLite Dialect = "sqlite"
	// PostgreSQL 15 or later, through github.com/jackc/pgx/v5/stdlib (as
	// GORM's gorm.io/driver/postgres opens it), which the reader needs for
	// LISTEN.
	Postgres Dialect = "postgres"
)

func (d Dialect) check() error {
	switch d {
	case SQLite, Postgres:
		return nil
	}
	return fmt.Errorf("capture: unsupported dialect %q (want %q or %q)", string(d), SQLite, Postgres)
}

// A Table is a database table whose writes are captured as changes of a
// model.
type Table struct {
	// Model is the label changes are reported under ("todolist.Task").
	Model string
	// Table is the table's name, optionally schema-qualified on
	// PostgreSQL ("tasks", "app.tasks").
	Table string
	// PK is the primary key column. Tables with a composite primary key
	// cannot be captured.
	PK string
	// Fields are the columns whose values before and after each write a
	// change carries in Old and New: the view's group-by fields and its
	// lookup field when that is not the primary key. The keys of Old and
	// New are these column names.
	Fields []string
	// BoolFields are those of Fields that hold booleans. SQLite stores
	// them as 0 and 1; its triggers report them as true and false, as
	// PostgreSQL's do and as clients send them.
	BoolFields []string
}

// identifier is what the triggers accept unquoted-equivalent: column and
// table names are quoted, but a name with quotes or control characters is
// refused rather than escaped, since no sane schema has one.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

func (t Table) check() error {
	if t.Model == "" {
		return fmt.Errorf("capture: table %q: Model is required", t.Table)
	}
	if err := checkTableName(t.Table); err != nil {
		return err
	}
	if !identifier.MatchString(t.PK) {
		return fmt.Errorf("capture: table %q: bad primary key column %q", t.Table, t.PK)
	}
	seen := map[string]bool{}
	for _, f := range t.Fields {
		if !identifier.MatchString(f) {
			return fmt.Errorf("capture: table %q: bad field column %q", t.Table, f)
		}
		if seen[f] {
			return fmt.Errorf("capture: table %q: field %q listed twice", t.Table, f)
		}
		seen[f] = true
	}
	for _, f := range t.BoolFields {
		if !seen[f] {
			return fmt.Errorf("capture: table %q: boolean field %q is not among Fields", t.Table, f)
		}
	}
	return nil
}

func checkTableName(name string) error {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return fmt.Errorf("capture: bad table name %q", name)
	}
	for _, p := range parts {
		if !identifier.MatchString(p) {
			return fmt.Errorf("capture: bad table name %q", name)
		}
	}
	return nil
}

// quoteIdent quotes a checked, possibly schema-qualified, name.
func quoteIdent(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + p + `"`
	}
	return strings.Join(parts, ".")
}

// quoteLiteral quotes s as an SQL string literal (both dialects).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// objectName names a trigger or function of a table: prefix plus the
// table's name, shortened with a hash when it would pass PostgreSQL's
// 63-byte identifier limit (which would otherwise truncate two long names
// to the same one).
func objectName(prefix, table string) string {
	name := prefix + strings.ReplaceAll(table, ".", "__")
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(table))
	return name[:50] + "_" + hex.EncodeToString(sum[:6])
}

// Install creates the outbox and cursor tables if they do not exist and
// installs (or replaces) the capture triggers of tables, in one
// transaction, so no write is missed while triggers are replaced. It is
// idempotent and safe to call from several processes at once, at every
// start. Call it after migrating the tables: a migration that rebuilds a
// table (as GORM's SQLite migrator does to alter a column) drops its
// triggers.
func Install(ctx context.Context, db *sql.DB, d Dialect, tables ...Table) error {
	if err := d.check(); err != nil {
		return err
	}
	for _, t := range tables {
		if err := t.check(); err != nil {
			return err
		}
	}
	err := execTx(ctx, db, d, func(ctx context.Context, conn *sql.Conn) error {
		switch d {
		case SQLite:
			return sqliteInstall(ctx, conn, tables)
		default:
			stmts := slices.Clone(postgresSchema)
			for _, t := range tables {
				stmts = append(stmts, postgresTrigger(t)...)
			}
			return execAll(ctx, conn, stmts)
		}
	})
	if err != nil {
		return fmt.Errorf("capture: install: %w", err)
	}
	return nil
}

// Remove drops the capture triggers of the named tables, so their writes
// are no longer captured. The outbox keeps the changes already recorded.
func Remove(ctx context.Context, db *sql.DB, d Dialect, tables ...string) error {
	if err := d.check(); err != nil {
		return err
	}
	var stmts []string
	for _, name := range tables {
		if err := checkTableName(name); err != nil {
			return err
		}
		switch d {
		case SQLite:
			stmts = append(stmts, sqliteDropTriggers(name)...)
		case Postgres:
			stmts = append(stmts, postgresDropTrigger(name)...)
		}
	}
	err := execTx(ctx, db, d, func(ctx context.Context, conn *sql.Conn) error {
		return execAll(ctx, conn, stmts)
	})
	if err != nil {
		return fmt.Errorf("capture: remove: %w", err)
	}
	return nil
}

// execTx runs f in one transaction. On SQLite the transaction is BEGIN
// IMMEDIATE: a deferred one that reads the schema first could fail with
// SQLITE_BUSY when upgrading to a write, busy_timeout or not. On
// PostgreSQL a transaction-level advisory lock serializes concurrent
// installers, whose CREATE TABLE IF NOT EXISTS would otherwise race.
func execTx(ctx context.Context, db *sql.DB, d Dialect, f func(context.Context, *sql.Conn) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	begin := "BEGIN"
	if d == SQLite {
		begin = "BEGIN IMMEDIATE"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The context may be what failed: roll back regardless.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if d == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", installLockKey); err != nil {
			return err
		}
	}
	if err := f(ctx, conn); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// execAll runs stmts in order, saying which one failed.
func execAll(ctx context.Context, conn *sql.Conn, stmts []string) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%w (in %.80q)", err, s)
		}
	}
	return nil
}
