package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/examples/todolist/todoapp"
	"github.com/restlive/restlive/live"
)

// appServer is the example app serving on loopback addresses, on a fresh
// database of its own, with its SQL counted.
type appServer struct {
	app     *todoapp.App
	addrs   []string // host:port of each listener
	counter *sqlCounter
	// setup is a connection of the benchmark's own to the same database,
	// not counted, for bulk inserts the API would make slow.
	setup *gorm.DB

	stopServe func() error
	cleanup   []func() error
}

// startApp starts todoapp on a new database: a SQLite file in dir, or,
// when dbURL is a postgres:// URL, a new schema in that database.
func startApp(ctx context.Context, dbURL, dir string, nAddrs int, withMetrics bool, log *slog.Logger) (_ *appServer, err error) {
	db, err := newDatabase(ctx, dbURL, dir)
	if err != nil {
		return nil, err
	}
	setupDB, err := db.openSetup()
	if err != nil {
		return nil, errors.Join(err, db.drop())
	}
	s, err := openApp(ctx, db.dsn, appLayer{}, 0, nAddrs, withMetrics, log)
	if err != nil {
		return nil, errors.Join(err, closeGorm(setupDB), db.drop())
	}
	s.setup = setupDB
	// Closed after the app, in this order: the setup connection, then
	// the database itself.
	s.cleanup = append([]func() error{db.drop, func() error { return closeGorm(setupDB) }}, s.cleanup...)
	return s, nil
}

// database is a run's new, empty database: a SQLite file in the run's
// directory, or a schema of its own in a PostgreSQL database.
type database struct {
	// dsn is the SQLite file's path, or a postgres:// URL whose
	// search_path is the run's schema.
	dsn string
	// drop removes the file, or drops the schema.
	drop func() error
}

func newDatabase(ctx context.Context, dbURL, dir string) (*database, error) {
	if dbURL == "" {
		path := filepath.Join(dir, "bench-"+randomName()+".db")
		return &database{dsn: path, drop: func() error {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suffix)
			}
			return nil
		}}, nil
	}
	// A schema per run: each run starts empty, and nothing is left
	// behind. The app's tables and the outbox are created in the first
	// schema of the search path.
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse -db: %w", err)
	}
	schema := "livebench_" + randomName()
	if err := adminExec(ctx, dbURL, "CREATE SCHEMA "+schema); err != nil {
		return nil, fmt.Errorf("create schema: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return &database{dsn: u.String(), drop: func() error {
		return adminExec(context.WithoutCancel(ctx), dbURL, "DROP SCHEMA "+schema+" CASCADE")
	}}, nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openSetup opens an uncounted connection to the database.
func (d *database) openSetup() (*gorm.DB, error) {
	dialector := sqlite.Open(sqliteDSN(d.dsn))
	if isPostgres(d.dsn) {
		dialector = postgres.Open(d.dsn)
	}
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("open the setup connection: %w", err)
	}
	return db, nil
}

func closeGorm(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return nil
	}
	return sqlDB.Close()
}

// appLayer is the layer todoapp carries changes over: none (a memory
// layer of its own) when one process serves, a broker's when several do.
type appLayer struct {
	layer live.Layer
	name  string // "redis", "nats"
}

// openApp starts todoapp on the database dsn (a SQLite path or a
// postgres:// URL), counting its statements, and serves it on nAddrs
// loopback addresses, with at most maxOpen database connections (0: the
// example's default). The app does not close the layer.
func openApp(ctx context.Context, dsn string, layer appLayer, maxOpen, nAddrs int, withMetrics bool, log *slog.Logger) (_ *appServer, err error) {
	s := &appServer{counter: &sqlCounter{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var dialector gorm.Dialector
	if isPostgres(dsn) {
		d, unregister, err := postgresDialector(dsn, s.counter)
		if err != nil {
			return nil, err
		}
		s.cleanup = append(s.cleanup, func() error { unregister(); return nil })
		dialector = d
	} else if dialector, err = sqliteDialector(dsn, s.counter); err != nil {
		return nil, err
	}

	app, err := todoapp.New(context.WithValue(ctx, captureKey{}, true), todoapp.Config{
		DB:           dsn,
		MaxOpenConns: maxOpen,
		Logger:       log,
		Dialector:    dialector,
		// The cheapest hash: registering a thousand users is setup, not
		// what is measured.
		BcryptCost: bcrypt.MinCost,
		LoginRate:  -1, // one address registers them all
		// Every client connects from the loopback address.
		ConfigureLive: func(c *live.Config) { c.MaxConnectionsPerAddress = -1 },
		NoMetrics:     !withMetrics,
		Layer:         layer.layer,
		LayerName:     layer.name,
	})
	if err != nil {
		return nil, err
	}
	s.app = app
	ln, err := listenLoopback(nAddrs)
	if err != nil {
		return nil, err
	}
	for _, l := range ln.lns {
		s.addrs = append(s.addrs, l.Addr().String())
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- app.Serve(sctx, ln) }()
	s.stopServe = sync.OnceValue(func() error {
		cancel()
		return <-served
	})
	return s, nil
}

func (s *appServer) close() error {
	var errs []error
	if s.stopServe != nil {
		errs = append(errs, s.stopServe())
	}
	if s.app != nil {
		errs = append(errs, s.app.Close())
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		errs = append(errs, s.cleanup[i]())
	}
	return errors.Join(errs...)
}

func adminExec(ctx context.Context, dbURL, sql string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// multiListener accepts on several loopback addresses (127.0.0.1,
// 127.0.0.2, ...) as one listener. Each address has its own range of
// client ports, so that many thousands of connections, and the TIME_WAIT
// of earlier runs, do not exhaust them.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func listenLoopback(n int) (*multiListener, error) {
	if n < 1 {
		n = 1
	}
	m := &multiListener{conns: make(chan net.Conn), done: make(chan struct{})}
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+1))
		if err != nil {
			for _, l := range m.lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen on loopback: %w", err)
		}
		m.lns = append(m.lns, ln)
	}
	for _, ln := range m.lns {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for {
				c, err := ln.Accept()
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err != nil {
					// Out of file descriptors, most likely: wait for
					// some to be freed, as net/http does.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				select {
				case m.conns <- c:
				case <-m.done:
					c.Close()
					return
				}
			}
		}()
	}
	return m, nil
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	m.once.Do(func() {
		close(m.done)
		for _, l := range m.lns {
			l.Close()
		}
		m.wg.Wait()
	})
	return nil
}

func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
