package todoapp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownTimeout bounds how long requests in flight and WebSockets may
// take to finish once the server is asked to stop.
const shutdownTimeout = 10 * time.Second

// Serve serves the app on ln until ctx is cancelled, then shuts down:
// it stops accepting, closes the WebSockets with 1001 (going away), waits
// up to shutdownTimeout for requests in flight and closes ln. It returns
// nil after a clean shutdown. The app itself stays open: Close it after.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: a,
		// Bounds for the REST API's requests and idle keep-alive
		// connections. They do not cut WebSockets: the router clears a
		// connection's deadlines when it takes it over, and pings it.
		ReadHeaderTimeout: min(10*time.Second, a.requestTimeout),
		ReadTimeout:       a.requestTimeout,
		WriteTimeout:      a.requestTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
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
	// http.Server.Shutdown neither closes nor waits for hijacked
	// connections such as WebSockets: the app's Shutdown does.
	err := errors.Join(srv.Shutdown(sctx), a.Shutdown(sctx))
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
