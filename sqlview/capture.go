package sqlview

import (
	"context"
	"database/sql"

	"github.com/restlive/restlive/capture"
)

// The database side of View: the triggers of package capture that record
// every committed write to the view's table, whoever makes it.

// CaptureTable describes the view's table for package capture: Table, PK,
// and the columns whose old and new values a change carries (GroupFields,
// and LookupField when it is not the primary key), with those R holds as
// booleans.
func (v *View[R]) CaptureTable() (capture.Table, error) {
	if err := v.Check(); err != nil {
		return capture.Table{}, err
	}
	m, err := v.model()
	if err != nil {
		return capture.Table{}, err
	}
	t := capture.Table{Model: v.Label, Table: v.Table, PK: m.PK.Column}
	t.Fields = append(t.Fields, v.GroupFields...)
	if m.Lookup != m.PK && !contains(t.Fields, m.Lookup.Column) {
		t.Fields = append(t.Fields, m.Lookup.Column)
	}
	for _, name := range t.Fields {
		if m.Column(name).Bool() {
			t.BoolFields = append(t.BoolFields, name)
		}
	}
	return t, nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

// A CaptureTabler describes a table to capture; every *View is one (and
// so is every gormlive.View).
type CaptureTabler interface {
	CaptureTable() (capture.Table, error)
}

var _ CaptureTabler = (*View[struct{ ID int }])(nil)

// InstallCapture installs the outbox and the capture triggers of views'
// tables in db, whose dialect is d: capture.SQLite, or pgcapture.Dialect
// for PostgreSQL (see capture.Install). Call it at every start, after the
// migrations: one that rebuilds a table drops its triggers. With a pgx
// pool, pass stdlib.OpenDBFromPool(pool) of github.com/jackc/pgx/v5/stdlib.
func InstallCapture(ctx context.Context, db *sql.DB, d capture.Dialect, views ...CaptureTabler) error {
	tables := make([]capture.Table, len(views))
	for i, v := range views {
		var err error
		if tables[i], err = v.CaptureTable(); err != nil {
			return err
		}
	}
	return capture.Install(ctx, db, d, tables...)
}
