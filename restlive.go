// Package restlive serves GORM models over REST and live WebSocket
// subscriptions from one view definition each, and keeps subscribers
// current with every committed write to their tables. It composes the
// packages that do the work for the common case: live (the WebSocket
// router), gormlive (the views), rest (the CRUD handlers) and capture (the
// outbox triggers and their reader). Applications with other needs use
// those directly.
//
// The examples are the best way to understand how to use it.
package restlive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"gorm.io/gorm"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// Config configures a Server.
type Config struct {
	// DB is the application's database, the views' DB. Required.
	DB *gorm.DB
	// Capture is the capture dialect of DB. Defaults to capture.SQLite
	// for GORM's sqlite dialector; PostgreSQL needs pgcapture.Dialect (of
	// package github.com/restlive/restlive/capture/pgcapture), which a
	// SQLite program is spared from linking.
	Capture capture.Dialect
	// Live configures the WebSocket router: who connects (Authenticate),
	// the limits of a client, and the layer between processes.
	Live live.Config
	// REST configures the REST handlers. Its Authenticate defaults to
	// Live's, so that a user is the same user on both sides.
	REST rest.Config
	// Reader configures the outbox reader; its Publisher is the router's
	// layer.
	Reader capture.Config
	// WebSocketPath is where the router is served. Defaults to
	// "/ws/subscribe/".
	WebSocketPath string
}

// A Server serves the views handed to Handle: their REST APIs at the paths
// given and their subscriptions at WebSocketPath. Start installs the
// capture of their tables and starts publishing changes; Shutdown stops it
// all, in order. Its methods may be called concurrently, but Handle
// belongs before Start.
type Server struct {
	cfg    Config
	router *live.Router
	mux    *http.ServeMux
	tables []capture.Table

	mu      sync.Mutex
	started bool
	reader  *capture.Reader
	stop    context.CancelFunc
	done    chan struct{}
}

// New returns a Server with no views.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, errors.New("restlive: Config.DB is required")
	}
	if cfg.Capture == nil {
		if name := cfg.DB.Dialector.Name(); name == "sqlite" {
			cfg.Capture = capture.SQLite
		} else {
			return nil, fmt.Errorf("restlive: set Config.Capture for the %q dialect", name)
		}
	}
	if cfg.REST.Authenticate == nil {
		cfg.REST.Authenticate = cfg.Live.Authenticate
	}
	if cfg.Reader.Logger == nil {
		cfg.Reader.Logger = cfg.Live.Logger
	}
	if cfg.REST.Logger == nil {
		cfg.REST.Logger = cfg.Live.Logger
	}
	if cfg.WebSocketPath == "" {
		cfg.WebSocketPath = "/ws/subscribe/"
	}
	if cfg.Live.History == nil {
		// The outbox is the record clients resume from, on any process
		// that shares the database.
		sqlDB, err := cfg.DB.DB()
		if err != nil {
			return nil, fmt.Errorf("restlive: %w", err)
		}
		if cfg.Live.History, err = capture.NewHistory(sqlDB, cfg.Capture); err != nil {
			return nil, fmt.Errorf("restlive: %w", err)
		}
	}
	s := &Server{cfg: cfg, router: live.NewRouter(cfg.Live), mux: http.NewServeMux()}
	s.mux.Handle(cfg.WebSocketPath, s.router)
	return s, nil
}

// Handle registers view with the server: its subscriptions with the
// router, its REST API at path (a prefix such as "/api/tasks/"), and its
// table for capture. Like http.ServeMux.Handle, it panics on a definition
// error, a programming error to fix before start-up.
func Handle[M any](s *Server, path string, view *gormlive.View[M]) {
	if !strings.HasSuffix(path, "/") {
		panic(fmt.Sprintf("restlive: Handle %q: the path must end with a slash", path))
	}
	table, err := view.CaptureTable()
	if err != nil {
		panic(err)
	}
	s.router.Register(view)
	s.mux.Handle(path, s.nudging(http.StripPrefix(strings.TrimSuffix(path, "/"), rest.Handler(view, s.cfg.REST))))
	s.tables = append(s.tables, table)
}

// Router returns the WebSocket router: for Disconnect, or to serve it
// elsewhere.
func (s *Server) Router() *live.Router { return s.router }

// Reader returns the outbox reader Start started, for its Status and Lag;
// nil before Start.
func (s *Server) Reader() *capture.Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reader
}

// ServeHTTP serves the REST APIs and the WebSocket endpoint at their paths,
// and 404 elsewhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Start installs the capture triggers of the views' tables (call it after
// migrating them: a migration that rebuilds a table drops its triggers),
// and starts the outbox reader, which publishes every committed write to
// the router until Shutdown. On SQLite, which has no NOTIFY, the reader is
// woken after each write through the REST handlers and through DB's GORM
// callbacks, and polls for the writes of others.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("restlive: Start called twice")
	}
	sqlDB, err := s.cfg.DB.DB()
	if err != nil {
		return fmt.Errorf("restlive: %w", err)
	}
	if err := capture.Install(ctx, sqlDB, s.cfg.Capture, s.tables...); err != nil {
		return fmt.Errorf("restlive: %w", err)
	}
	rcfg := s.cfg.Reader
	rcfg.Publisher = s.router.Layer()
	reader, err := capture.NewReader(sqlDB, s.cfg.Capture, rcfg)
	if err != nil {
		return fmt.Errorf("restlive: %w", err)
	}
	if s.cfg.Capture == capture.SQLite {
		if err := nudgeAfterWrites(s.cfg.DB, reader); err != nil {
			return err
		}
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.reader, s.stop, s.done, s.started = reader, stop, make(chan struct{}), true
	go func() {
		defer close(s.done)
		if err := reader.Run(rctx); err != nil {
			log := s.cfg.Live.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Error("restlive: outbox reader stopped", "err", err)
		}
	}()
	return nil
}

// Shutdown closes the WebSockets with 1001 (going away) and waits for them
// to end (see live.Router.Shutdown), then stops the outbox reader. The
// application closes its database and its layer after.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.router.Shutdown(ctx)
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return err
}

// nudging wakes the reader after each write request, so that its
// broadcasts go out at once rather than at the reader's next poll.
func (s *Server) nudging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return
		}
		s.mu.Lock()
		reader := s.reader
		s.mu.Unlock()
		if reader != nil {
			reader.Nudge()
		}
	})
}

// nudgeAfterWrites registers GORM callbacks that wake reader after each
// create, update, delete and raw statement run through db, once GORM has
// committed the statement's own transaction. A statement inside a longer
// transaction wakes it before that commits; the reader's poll then finds
// the rows.
func nudgeAfterWrites(db *gorm.DB, reader *capture.Reader) error {
	const name = "restlive:nudge"
	nudge := func(*gorm.DB) { reader.Nudge() }
	cb := db.Callback()
	// A second Server on the same db takes the callbacks over.
	register := func(get func(string) func(*gorm.DB), replace, register func(string, func(*gorm.DB)) error) error {
		if get(name) != nil {
			return replace(name, nudge)
		}
		return register(name, nudge)
	}
	const committed = "gorm:commit_or_rollback_transaction"
	err := errors.Join(
		register(cb.Create().Get, cb.Create().Replace, cb.Create().After(committed).Register),
		register(cb.Update().Get, cb.Update().Replace, cb.Update().After(committed).Register),
		register(cb.Delete().Get, cb.Delete().Replace, cb.Delete().After(committed).Register),
		register(cb.Raw().Get, cb.Raw().Replace, cb.Raw().After("gorm:raw").Register),
	)
	if err != nil {
		return fmt.Errorf("restlive: GORM callbacks: %w", err)
	}
	return nil
}
