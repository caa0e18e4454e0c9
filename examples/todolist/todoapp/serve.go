package todoapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// once the server is asked to stop.
const shutdownTimeout = 10 * time.Second

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
