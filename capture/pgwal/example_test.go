package pgwal_test

import (
	"context"
	"database/sql"
	"log"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgwal"
	"github.com/restlive/restlive/live"
)

// An application that captures from the write-ahead log: the calls of
// the triggers' capture, with another dialect. It needs a server with
// wal_level = logical and a role with REPLICATION (see the package
// documentation), so it is compiled, not run.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	tasks := capture.Table{Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"}}

	d := pgwal.New(pgwal.Config{}) // instead of pgcapture.Dialect
	if err := capture.Install(ctx, db, d, tasks); err != nil {
		log.Fatal(err) // capture: install: ... needs wal_level = logical, and the server has replica: ...
	}
	layer := live.NewMemoryLayer()
	reader, err := capture.NewReader(db, d, capture.Config{Publisher: layer})
	if err != nil {
		log.Fatal(err)
	}
	history, err := capture.NewHistory(db, d)
	if err != nil {
		log.Fatal(err)
	}
	router := live.NewRouter(live.Config{Layer: layer, History: history})
	go func() {
		if err := reader.Run(ctx); err != nil {
			log.Fatal(err) // capture: table public.tasks: its REPLICA IDENTITY DEFAULT does not give ...
		}
	}()

	// For monitoring: how far behind the reader is, and the log the slot
	// keeps for it.
	status, err := d.Status(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("slot %s: active %v, %d bytes behind, %d bytes kept", status.Slot, status.Active, status.Lag, status.Retained)
	_ = router
}
