package gormlive

import (
	"context"
	"database/sql"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/restlive/restlive/capture"
)

// The database side of View: the triggers of package capture that record
// every committed write to the view's table, whoever makes it.

// CaptureTable describes the view's table for package capture: its name,
// its primary key column, and the columns whose old and new values a
// change carries (GroupFields, and LookupField when it is not the primary
// key) with those that hold booleans, all read from M's GORM schema.
func (v *View[M]) CaptureTable() (capture.Table, error) {
	if err := v.Check(); err != nil {
		return capture.Table{}, err
	}
	m, err := v.model()
	if err != nil {
		return capture.Table{}, err
	}
	t := capture.Table{Model: v.Label, Table: m.Schema.Table, PK: m.PK.Column}
	t.Fields = append(t.Fields, v.GroupFields...)
	if m.Lookup != m.PK && !contains(t.Fields, m.Lookup.Column) {
		t.Fields = append(t.Fields, m.Lookup.Column)
	}
	for _, name := range t.Fields {
		if f := m.Schema.FieldsByDBName[name]; f != nil && f.DataType == schema.Bool {
			t.BoolFields = append(t.BoolFields, name)
		}
	}
	return t, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A CaptureTabler describes a table to capture; every *View is one.
type CaptureTabler interface {
	CaptureTable() (capture.Table, error)
}

var _ CaptureTabler = (*View[struct{ ID int }])(nil)

// InstallCapture installs the outbox and the capture triggers of views'
// tables in db, whose dialect is d: capture.SQLite, or pgcapture.Dialect
// for PostgreSQL (see capture.Install). Call it at every start, after
// AutoMigrate: a migration that rebuilds a table drops its triggers.
func InstallCapture(ctx context.Context, db *gorm.DB, d capture.Dialect, views ...CaptureTabler) error {
	sqlDB, err := captureDB(db)
	if err != nil {
		return err
	}
	tables := make([]capture.Table, len(views))
	for i, v := range views {
		if tables[i], err = v.CaptureTable(); err != nil {
			return err
		}
	}
	return capture.Install(ctx, sqlDB, d, tables...)
}

// RemoveCapture drops the capture triggers of views' tables (see
// capture.Remove).
func RemoveCapture(ctx context.Context, db *gorm.DB, d capture.Dialect, views ...CaptureTabler) error {
	sqlDB, err := captureDB(db)
	if err != nil {
		return err
	}
	names := make([]string, len(views))
	for i, v := range views {
		t, err := v.CaptureTable()
		if err != nil {
			return err
		}
		names[i] = t.Table
	}
	return capture.Remove(ctx, sqlDB, d, names...)
}

// NewCaptureReader returns a capture.Reader of db's outbox.
func NewCaptureReader(db *gorm.DB, d capture.Dialect, cfg capture.Config) (*capture.Reader, error) {
	sqlDB, err := captureDB(db)
	if err != nil {
		return nil, err
	}
	return capture.NewReader(sqlDB, d, cfg)
}

func captureDB(db *gorm.DB) (*sql.DB, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("gormlive: capture: %w", err)
	}
	return sqlDB, nil
}
