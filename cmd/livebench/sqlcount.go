package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// The server's SQL statements are counted where they reach the database
// driver, and told apart by who ran them, from their context:
//
//   - rest: an HTTP request (the REST write itself, authentication, a
//     WebSocket subscribe). net/http puts the listener's address in the
//     context of every request it serves.
//   - capture: the outbox reader, whose context descends from the one the
//     benchmark gives todoapp.New, marked with captureKey.
//   - live: anything else, which during the write phase is the hub
//     checking scopes (its context descends from context.Background).
//
// A read of the outbox reader that finds nothing is counted apart, as
// capture-idle: the reader polls on a timer (every 5ms on SQLite), so
// those cost per second, not per write.
//
// BEGIN and COMMIT are not counted: they are not queries, and database/sql
// issues them through separate driver calls.

type sqlClass int

const (
	sqlREST sqlClass = iota
	sqlCapture
	sqlLive
	sqlCaptureIdle
	numSQLClasses
)

// sqlCounts are the statements counted so far, by class.
type sqlCounts [numSQLClasses]int64

func (c sqlCounts) sub(d sqlCounts) sqlCounts {
	for i := range c {
		c[i] -= d[i]
	}
	return c
}

func (c sqlCounts) total() int64 {
	return c[sqlREST] + c[sqlCapture] + c[sqlLive] + c[sqlCaptureIdle]
}

// captureKey marks the context of the outbox reader.
type captureKey struct{}

// sqlCounter counts the statements of one database. Its methods may be
// called concurrently.
type sqlCounter struct {
	n [numSQLClasses]atomic.Int64
}

func classify(ctx context.Context) sqlClass {
	switch {
	case ctx.Value(http.LocalAddrContextKey) != nil:
		return sqlREST
	case ctx.Value(captureKey{}) != nil:
		return sqlCapture
	}
	return sqlLive
}

func (c *sqlCounter) count(ctx context.Context) { c.n[classify(ctx)].Add(1) }

// countRows counts a query whose rows are not read yet: the returned rows
// count it when closed, as capture-idle if it is the outbox reader's and
// found nothing.
func (c *sqlCounter) countRows(ctx context.Context, rows driver.Rows) driver.Rows {
	class := classify(ctx)
	if class != sqlCapture {
		c.n[class].Add(1)
		return rows
	}
	return &captureRows{Rows: rows, counter: c}
}

func (c *sqlCounter) snapshot() sqlCounts {
	var s sqlCounts
	for i := range s {
		s[i] = c.n[i].Load()
	}
	return s
}

// The counting SQLite driver wraps github.com/glebarez/go-sqlite (driver
// name "sqlite"). database/sql registers drivers once per process, so one
// driver serves every run, each run's connections reporting to the counter
// current when they were opened.
const countingSQLite = "livebench-sqlite"

var (
	registerSQLite sync.Once
	sqliteCounter  atomic.Pointer[sqlCounter]
)

// sqliteDialector opens the SQLite file path with the pragmas todoapp uses
// for its own connections, through the counting driver.
func sqliteDialector(path string, counter *sqlCounter) (gorm.Dialector, error) {
	var err error
	registerSQLite.Do(func() {
		db, e := sql.Open(sqlite.DriverName, ":memory:")
		if e != nil {
			err = fmt.Errorf("open the sqlite driver: %w", e)
			return
		}
		inner := db.Driver()
		db.Close()
		sql.Register(countingSQLite, &countingDriver{inner: inner})
	})
	if err != nil {
		return nil, err
	}
	sqliteCounter.Store(counter)
	return sqlite.Dialector{DriverName: countingSQLite, DSN: sqliteDSN(path)}, nil
}

// sqliteDSN is todoapp's: WAL, a busy timeout, NORMAL sync, foreign keys.
func sqliteDSN(path string) string {
	return path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
}

type countingDriver struct{ inner driver.Driver }

func (d *countingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.inner.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingConn{inner: c, counter: sqliteCounter.Load()}, nil
}

// countingConn passes every call to the driver's connection, counting the
// statements executed. It implements the context interfaces that
// glebarez/go-sqlite's connection does, and falls back where the inner
// connection lacks one, as database/sql itself would.
type countingConn struct {
	inner   driver.Conn
	counter *sqlCounter
}

var (
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
)

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var (
		s   driver.Stmt
		err error
	)
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		s, err = p.PrepareContext(ctx, query)
	} else {
		s, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{inner: s, counter: c.counter}, nil
}

func (c *countingConn) Close() error { return c.inner.Close() }

func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	//lint:ignore SA1019 the fallback database/sql uses too
	return c.inner.Begin()
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares and executes instead
	}
	res, err := e.ExecContext(ctx, query, args)
	if err != driver.ErrSkip {
		c.counter.count(ctx)
	}
	return res, err
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != nil {
		if err != driver.ErrSkip {
			c.counter.count(ctx)
		}
		return nil, err
	}
	return c.counter.countRows(ctx, rows), nil
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

type countingStmt struct {
	inner   driver.Stmt
	counter *sqlCounter
}

var (
	_ driver.StmtExecContext  = (*countingStmt)(nil)
	_ driver.StmtQueryContext = (*countingStmt)(nil)
)

func (s *countingStmt) Close() error  { return s.inner.Close() }
func (s *countingStmt) NumInput() int { return s.inner.NumInput() }

func (s *countingStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.counter.count(context.Background())
	//lint:ignore SA1019 the interface database/sql falls back to
	return s.inner.Exec(args)
}

func (s *countingStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.counter.count(context.Background())
	//lint:ignore SA1019 as Exec
	return s.inner.Query(args)
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.counter.count(ctx)
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	values, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 as Exec
	return s.inner.Exec(values)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	var (
		rows driver.Rows
		err  error
	)
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		rows, err = q.QueryContext(ctx, args)
	} else {
		var values []driver.Value
		if values, err = namedToValues(args); err == nil {
			//lint:ignore SA1019 as Exec
			rows, err = s.inner.Query(values)
		}
	}
	if err != nil {
		s.counter.count(ctx)
		return nil, err
	}
	return s.counter.countRows(ctx, rows), nil
}

// captureRows are the rows of a query of the outbox reader. They hide the
// driver's optional column type methods, which the reader does not use.
type captureRows struct {
	driver.Rows
	counter *sqlCounter
	found   bool
	counted bool
}

func (r *captureRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err == nil {
		r.found = true
	}
	return err
}

func (r *captureRows) Close() error {
	if !r.counted {
		r.counted = true
		if r.found {
			r.counter.n[sqlCapture].Add(1)
		} else {
			r.counter.n[sqlCaptureIdle].Add(1)
		}
	}
	return r.Rows.Close()
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, fmt.Errorf("livebench: the driver does not support named parameters (%s)", a.Name)
		}
		out[i] = a.Value
	}
	return out, nil
}

// postgresDialector opens dsn through pgx's database/sql driver with a
// query tracer that counts. The tracer is pgx's own hook, called for every
// statement it sends, so the count is at the driver as on SQLite. (A
// database/sql wrapper around pgx would hide its *stdlib.Conn from the
// outbox reader, which needs it to LISTEN for the triggers' NOTIFY.) The
// returned func unregisters the configuration.
func postgresDialector(dsn string, counter *sqlCounter) (gorm.Dialector, func(), error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("parse the PostgreSQL URL: %w", err)
	}
	cfg.Tracer = pgxCounter{counter}
	name := stdlib.RegisterConnConfig(cfg)
	d := postgres.New(postgres.Config{DriverName: "pgx", DSN: name})
	return d, func() { stdlib.UnregisterConnConfig(name) }, nil
}

type pgxCounter struct{ c *sqlCounter }

// txControlKey marks the context of a BEGIN, COMMIT or ROLLBACK, which pgx
// sends as statements but database/sql drivers such as SQLite's do not:
// they are left out on both.
type txControlKey struct{}

func (pgxCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	word, _, _ := strings.Cut(strings.TrimSpace(data.SQL), " ")
	switch strings.ToLower(word) {
	case "begin", "commit", "rollback":
		return context.WithValue(ctx, txControlKey{}, true)
	}
	return ctx
}

// TraceQueryEnd counts the query; a SELECT of the outbox reader whose
// command tag says it returned no rows is an idle poll.
func (p pgxCounter) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if ctx.Value(txControlKey{}) != nil {
		return
	}
	class := classify(ctx)
	if class == sqlCapture && data.Err == nil && data.CommandTag.Select() && data.CommandTag.RowsAffected() == 0 {
		class = sqlCaptureIdle
	}
	p.c.n[class].Add(1)
}
