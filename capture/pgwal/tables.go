package pgwal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// A tableConf is a captured table as restlive_wal_tables records it.
type tableConf struct {
	model, pk string
	fields    []string
}

// loadTables reads restlive_wal_tables, by schema.table.
func loadTables(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[string]*tableConf, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, model, pk, fields FROM restlive_wal_tables`)
	if err != nil {
		return nil, fmt.Errorf("read restlive_wal_tables: %w", err)
	}
	defer rows.Close()
	out := map[string]*tableConf{}
	for rows.Next() {
		var name, fields string
		c := &tableConf{}
		if err := rows.Scan(&name, &c.model, &c.pk, &fields); err != nil {
			return nil, fmt.Errorf("read restlive_wal_tables: %w", err)
		}
		c.fields = splitList(fields)
		out[name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read restlive_wal_tables: %w", err)
	}
	return out, nil
}

// loadTables reads the table list as the cursor recorded it, at the
// position tablesAt of the stream; none, when the stream holds all of it
// (see recordSlot).
func (s *session) loadTables(ctx context.Context) error {
	var list []byte
	if err := s.conn.QueryRowContext(ctx, `SELECT tables::text, tables_lsn::text FROM restlive_wal_cursor WHERE name = 'default'`).
		Scan(&list, &s.tablesAt); err != nil {
		return fmt.Errorf("capture: read restlive_wal_cursor: %w", err)
	}
	s.tables = map[string]*tableConf{}
	if list == nil {
		s.tablesAt, s.tablesDirty = 0, true
		return nil
	}
	var saved map[string][3]string
	if err := json.Unmarshal(list, &saved); err != nil {
		return fmt.Errorf("capture: restlive_wal_cursor's tables: %w", err)
	}
	for name, t := range saved {
		s.tables[name] = &tableConf{model: t[0], pk: t[1], fields: splitList(t[2])}
	}
	return nil
}

// encodeTables is the table list as the cursor records it.
func encodeTables(tables map[string]*tableConf) string {
	saved := make(map[string][3]string, len(tables))
	for name, t := range tables {
		saved[name] = [3]string{t.model, t.pk, strings.Join(t.fields, ",")}
	}
	b, _ := json.Marshal(saved)
	return string(b)
}

// Ready checks what the reader needs before it starts: wal_level, the
// tables Install creates, and each captured table still there, in the
// publication, with a replica identity that gives the old values capture
// needs. It does not check the slot, which the reader makes anew if it
// is gone.
func (d *Dialect) Ready(ctx context.Context, db *sql.DB) error {
	if err := checkWALLevel(ctx, db); err != nil {
		return err
	}
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1 FROM restlive_wal_cursor WHERE name = 'default'`).Scan(&one); err != nil {
		return fmt.Errorf("not installed (call capture.Install first): %w", err)
	}
	n, err := d.names(ctx, db)
	if err != nil {
		return err
	}
	return checkTables(ctx, db, n.publication)
}

// checkTables says what is wrong with each captured table, if anything.
func checkTables(ctx context.Context, db *sql.DB, publication string) error {
	tables, err := loadTables(ctx, db)
	if err != nil {
		return err
	}
	var errs []error
	for name, c := range tables {
		errs = append(errs, checkTable(ctx, db, publication, name, c))
	}
	return errors.Join(errs...)
}

func checkTable(ctx context.Context, db *sql.DB, publication, name string, c *tableConf) error {
	schema, table, _ := strings.Cut(name, ".")
	info, err := describe(ctx, db, quoteIdent(schema)+"."+quoteIdent(table), publication)
	if errors.Is(err, errNoTable) {
		return fmt.Errorf("table %s, captured as %s, no longer exists: call capture.Install after migrations, or capture.Remove", name, c.model)
	}
	if err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	if !info.published {
		return fmt.Errorf("table %s, captured as %s, is not in publication %s (was it made anew by a migration?): "+
			"call capture.Install after migrations", name, c.model, publication)
	}
	if gap := info.identityGap(outbox.Table{PK: c.pk, Fields: c.fields}); gap != "" {
		return fmt.Errorf("table %s: its REPLICA IDENTITY %s does not give the old values of %s, which capture needs "+
			"to tell the groups a row leaves on UPDATE and DELETE: call capture.Install, which sets REPLICA IDENTITY FULL, "+
			"or ALTER TABLE %s REPLICA IDENTITY FULL (or USING INDEX, on a unique index over those columns)",
			name, identityNames[info.identity], gap, info.quoted())
	}
	return nil
}
