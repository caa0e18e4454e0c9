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
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/restlive/restlive/examples/todolist/todoapp"
)

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
	if err := run(ctx, todoapp.Config{DB: *db, Logger: log}, *addr); err != nil {
		log.Error("todolist: " + err.Error())
		os.Exit(1)
	}
}

// run serves the app on addr until ctx is cancelled.
func run(ctx context.Context, cfg todoapp.Config, addr string) error {
	app, err := todoapp.New(ctx, cfg)
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
