// Command todolist is the example app of restlive: a to-do list server
// whose REST API and live WebSocket subscriptions are served from the same
// view definitions, with a web page that stays current without reloading.
//
//	go run ./examples/todolist            # http://127.0.0.1:8000
//	go run ./examples/todolist -h         # the flags
//
// It needs nothing installed: the default database is a SQLite file,
// todolist.db, created in the working directory on first start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// once the server is asked to stop.
const shutdownTimeout = 10 * time.Second

func main() {
	fs := flag.NewFlagSet("todolist", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "`address` to listen on (host:port; use :8000 for every interface)")
	db := fs.String("db", "todolist.db", "database: a SQLite file `path` (created and migrated on first start),\nor a postgres://user:password@host:port/dbname URL")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: todolist [flags]\n\n")
		fmt.Fprintf(out, "Serves the to-do list example of restlive: the web page at /, the REST API\n")
		fmt.Fprintf(out, "at /api/ and live subscriptions over a WebSocket at /ws/subscribe/.\n")
		fmt.Fprintf(out, "Stops cleanly on SIGINT (Ctrl-C) or SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, Config{DB: *db, Logger: log}, *addr); err != nil {
		log.Error("todolist: " + err.Error())
		os.Exit(1)
	}
}

// run serves the app on addr until ctx is cancelled.
func run(ctx context.Context, cfg Config, addr string) error {
	app, err := newApp(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	cfg.Logger.Info("todolist: serving", "url", "http://"+ln.Addr().String()+"/", "db", cfg.DB)
	err = app.Serve(ctx, ln)
	cfg.Logger.Info("todolist: stopped")
	return err
}

// Serve serves the app on ln until ctx is cancelled, then shuts down:
// it stops accepting, closes the WebSockets with 1001 (going away), waits
// up to shutdownTimeout for requests in flight and closes ln. It returns
// nil after a clean shutdown. The app itself stays open: Close it after.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	// Shutdown neither closes nor waits for hijacked connections such as
	// WebSockets: the router closes them, as Shutdown begins.
	routerClosed := make(chan error, 1)
	srv.RegisterOnShutdown(func() { routerClosed <- a.closeRouter() })

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	a.log.Info("todolist: shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	select {
	case rerr := <-routerClosed:
		err = errors.Join(err, rerr)
	case <-sctx.Done():
		err = errors.Join(err, fmt.Errorf("close websockets: %w", sctx.Err()))
	}
	return err
}
