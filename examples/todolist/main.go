// Command todolist is the example app of restlive: a to-do list server
// whose REST API and live WebSocket subscriptions are served from the same
// view definitions, with a web page that stays current without reloading.
//
//	go run ./examples/todolist            # http://127.0.0.1:8000
//	go run ./examples/todolist -views sql # the same app, its models served in plain SQL
//	go run ./examples/todolist -h         # the flags
//
// It needs nothing installed: the default database is a SQLite file,
// todolist.db, created in the working directory on first start.
//
// Several processes may serve one database, behind a load balancer, when
// they share a broker that carries each change to every process:
//
//	todolist -addr :8001 -db postgres://... -redis redis://127.0.0.1:6379/0
//	todolist -addr :8002 -db postgres://... -redis redis://127.0.0.1:6379/0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/restlive/restlive/examples/todolist/todoapp"
	"github.com/restlive/restlive/layer/nats"
	"github.com/restlive/restlive/layer/redis"
	"github.com/restlive/restlive/live"
)

func main() {
	fs := flag.NewFlagSet("todolist", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "`address` to listen on (host:port; use :8000 for every interface)")
	db := fs.String("db", "todolist.db", "database: a SQLite file `path` (created and migrated on first start),\nor a postgres://user:password@host:port/dbname URL")
	redisURL := fs.String("redis", "", "run as one of several processes sharing the database, which reach each\nother through the Redis server at `URL` (redis://[user:password@]host:port/db,\nor rediss:// for TLS)")
	views := fs.String("views", todoapp.ViewsGORM, "how the lists and tasks are served: \"gorm\", by gormlive views and package rest,\nor \"sql\", by sqlview views and REST handlers written in plain SQL; both\nanswer and broadcast the same bytes")
	natsURL := fs.String("nats", "", "run as one of several processes sharing the database, which reach each\nother through the NATS server at `URL` (nats://[user:password@]host:port, or a\ncomma-separated list of a cluster's servers)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: todolist [flags]\n\n")
		fmt.Fprintf(out, "Serves the to-do list example of restlive: the web page at /, the REST API\n")
		fmt.Fprintf(out, "at /api/ and live subscriptions over a WebSocket at /ws/subscribe/.\n")
		fmt.Fprintf(out, "Stops cleanly on SIGINT (Ctrl-C) or SIGTERM.\n\n")
		fmt.Fprintf(out, "Alone, a process carries changes to its own subscribers. With -redis or\n")
		fmt.Fprintf(out, "-nats (not both), any number of processes may serve one database (a\n")
		fmt.Fprintf(out, "PostgreSQL database, or a SQLite file on one machine): every subscriber\n")
		fmt.Fprintf(out, "gets every change, whichever process it is connected to and whichever\n")
		fmt.Fprintf(out, "process the write went through. The broker must be reachable at start.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	if *views != todoapp.ViewsGORM && *views != todoapp.ViewsSQL {
		fmt.Fprintf(fs.Output(), "todolist: -views %q: want gorm or sql\n", *views)
		os.Exit(2)
	}
	if *redisURL != "" && *natsURL != "" {
		fmt.Fprintln(fs.Output(), "todolist: -redis and -nats cannot be used together: choose one broker")
		os.Exit(2)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, todoapp.Config{DB: *db, Logger: log, Views: *views}, *addr, broker{redis: *redisURL, nats: *natsURL})
	if err != nil {
		log.Error("todolist: " + err.Error())
		os.Exit(1)
	}
}

// broker names the broker that joins the processes: at most one URL is
// set; none means a process of its own.
type broker struct{ redis, nats string }

// name names the broker in metrics.
func (b broker) name() string {
	if b.redis != "" {
		return "redis"
	}
	return "nats"
}

// brokerLayer is a layer over a broker, which its opener closes.
type brokerLayer interface {
	live.Layer
	Close() error
}

// open connects to the broker and returns the layer over it, or nil for
// none (the app then keeps a memory layer of its own).
func (b broker) open(ctx context.Context, log *slog.Logger) (brokerLayer, error) {
	switch {
	case b.redis != "":
		l, err := redis.New(ctx, redis.Config{URL: b.redis, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		return l, nil
	case b.nats != "":
		l, err := nats.New(ctx, nats.Config{URL: b.nats, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-nats: %w", err)
		}
		return l, nil
	}
	return nil, nil
}

// run serves the app on addr until ctx is cancelled. The broker comes
// first, so that a wrong URL fails before the database is touched, and
// is closed last, after the app has stopped publishing to it.
func run(ctx context.Context, cfg todoapp.Config, addr string, b broker) (err error) {
	layer, err := b.open(ctx, cfg.Logger)
	if err != nil {
		return err
	}
	if layer != nil {
		cfg.Layer = layer
		cfg.LayerName = b.name()
		defer func() {
			if cerr := layer.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close broker: %w", cerr))
			}
		}()
	}
	app, err := todoapp.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	attrs := []any{"url", "http://" + ln.Addr().String() + "/", "db", cfg.DB, "views", cfg.Views}
	switch {
	case b.redis != "":
		attrs = append(attrs, "broker", "redis")
	case b.nats != "":
		attrs = append(attrs, "broker", "nats")
	}
	cfg.Logger.Info("todolist: serving", attrs...)
	err = app.Serve(ctx, ln)
	cfg.Logger.Info("todolist: stopped")
	return err
}
