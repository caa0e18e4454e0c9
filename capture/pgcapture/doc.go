// Package pgcapture is capture's PostgreSQL dialect: Dialect, for
// PostgreSQL 15 or later through github.com/jackc/pgx/v5/stdlib (as
// GORM's gorm.io/driver/postgres opens it), which the reader needs for
// LISTEN.
//
//	err := capture.Install(ctx, db, pgcapture.Dialect, tasks)
//	r, err := capture.NewReader(db, pgcapture.Dialect, capture.Config{Publisher: layer})
//
// It is a package of its own so that a program that uses only SQLite
// links no PostgreSQL driver. Package capture says how capture works on
// PostgreSQL.
package pgcapture
