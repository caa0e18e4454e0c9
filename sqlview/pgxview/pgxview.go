// Package pgxview lets a sqlview.View read a PostgreSQL database through
// pgx directly: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx. It is a package
// of its own so that a program that uses database/sql only links no pgx.
//
//	tasks := &sqlview.View[Task]{Label: "todolist.Task", DB: pgxview.Pool(pool), Table: "tasks"}
package pgxview

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/restlive/restlive/sqlview"
)

// PgxQuerier is what *pgxpool.Pool, *pgx.Conn and pgx.Tx have in common.
type PgxQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Pool returns the sqlview.Querier of q, a pgx pool, connection or
// transaction.
func Pool(q PgxQuerier) sqlview.Querier { return querier{q} }

type querier struct{ q PgxQuerier }

func (q querier) Query(ctx context.Context, sql string, args ...any) (sqlview.Rows, error) {
	rows, err := q.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rowsAdapter{rows}, nil
}

func (querier) Dialect() sqlview.Dialect { return sqlview.Postgres }

// rowsAdapter gives pgx.Rows the methods of *sql.Rows that scanning by
// column name needs.
type rowsAdapter struct{ pgx.Rows }

func (r rowsAdapter) Columns() ([]string, error) {
	fields := r.FieldDescriptions()
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = f.Name
	}
	return cols, nil
}

func (r rowsAdapter) Close() error {
	r.Rows.Close()
	return nil
}

func (rowsAdapter) NextResultSet() bool { return false }
