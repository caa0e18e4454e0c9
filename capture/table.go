package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// A Dialect is the SQL of one database: SQLite, or PostgreSQL's
// pgcapture.Dialect, which is in a package of its own so that a program
// that uses only SQLite links no PostgreSQL driver.
//
// Its methods are for this module's dialect packages: they speak types
// of an internal package, so no other module can implement a Dialect,
// nor has any use for calling them, except String, which names the
// database.
type Dialect interface {
	outbox.Dialect
}

// SQLite is the Dialect of SQLite through the pure-Go driver
// github.com/glebarez/go-sqlite (database/sql driver name "sqlite"), as
// GORM's github.com/glebarez/sqlite opens it.
var SQLite Dialect = sqliteDialect{}

func checkDialect(d Dialect) error {
	if d == nil {
		return errors.New("capture: no dialect (capture.SQLite, or pgcapture.Dialect for PostgreSQL)")
	}
	return nil
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

// Install creates the outbox and cursor tables if they do not exist and
// installs (or replaces) the capture triggers of tables, in one
// transaction, so no write is missed while triggers are replaced. It is
// idempotent and safe to call from several processes at once, at every
// start. Call it after migrating the tables: a migration that rebuilds a
// table (as GORM's SQLite migrator does to alter a column) drops its
// triggers.
func Install(ctx context.Context, db *sql.DB, d Dialect, tables ...Table) error {
	if err := checkDialect(d); err != nil {
		return err
	}
	checked := make([]outbox.Table, len(tables))
	for i, t := range tables {
		if err := t.check(); err != nil {
			return err
		}
		checked[i] = outbox.Table(t)
	}
	if err := d.Install(ctx, db, checked); err != nil {
		return fmt.Errorf("capture: install: %w", err)
	}
	return nil
}

// Remove drops the capture triggers of the named tables, so their writes
// are no longer captured. The outbox keeps the changes already recorded.
func Remove(ctx context.Context, db *sql.DB, d Dialect, tables ...string) error {
	if err := checkDialect(d); err != nil {
		return err
	}
	for _, name := range tables {
		if err := checkTableName(name); err != nil {
			return err
		}
	}
	if err := d.Remove(ctx, db, tables); err != nil {
		return fmt.Errorf("capture: remove: %w", err)
	}
	return nil
}
