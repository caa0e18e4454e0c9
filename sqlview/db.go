package sqlview

import (
	"context"
	"database/sql"
)

// A Dialect is the SQL of a database, as far as a view's statements
// differ: how parameters are written, whether rows can be locked, and
// how a list of keys is bound.
type Dialect int

// The dialects.
const (
	// SQLite: ? parameters, no row locks, at most maxVars parameters a
	// statement.
	SQLite Dialect = iota + 1
	// Postgres: $n parameters, SELECT ... FOR UPDATE, and a list of keys
	// bound as one array.
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown dialect"
}

// A Querier runs a query and returns its rows: a database, a connection
// or a transaction, of a dialect. SQL adapts database/sql's; package
// sqlview/pgxview adapts pgx's, so that a program that uses only
// database/sql links no pgx.
type Querier interface {
	// Query runs query with args bound to its parameters.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// Dialect is the dialect of the database queried.
	Dialect() Dialect
}

// Rows are the rows a query returns, as *sql.Rows has them.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Columns() ([]string, error)
	Err() error
	Close() error
	NextResultSet() bool
}

// SQLQuerier is what database/sql's *sql.DB, *sql.Conn and *sql.Tx have in
// common.
type SQLQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SQL returns the Querier of q, a database/sql database, connection or
// transaction of dialect d.
func SQL(q SQLQuerier, d Dialect) Querier { return sqlQuerier{q, d} }

type sqlQuerier struct {
	q SQLQuerier
	d Dialect
}

func (s sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	return s.q.QueryContext(ctx, query, args...)
}

func (s sqlQuerier) Dialect() Dialect { return s.d }

// txKey is the context key of a request's transaction.
type txKey struct{}

// WithTx returns ctx carrying tx, the transaction of the request ctx
// belongs to: the view's reads (Get, Find, Page) and DB(ctx, ...) in the
// application's hooks then query within it. A REST handler that writes
// sets it around the write.
func WithTx(ctx context.Context, tx Querier) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// DB returns the transaction ctx carries (see WithTx), or else db.
func DB(ctx context.Context, db Querier) Querier {
	if tx, ok := ctx.Value(txKey{}).(Querier); ok {
		return tx
	}
	return db
}
