package pgcapture_test

import (
	"context"
	"database/sql"
	"log"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgcapture"
	"github.com/restlive/restlive/live"
)

// On PostgreSQL, capture takes pgcapture.Dialect where SQLite takes
// capture.SQLite; the rest is the same. (restlive.Config's Capture field
// takes it too.)
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	table := capture.Table{Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"}}
	if err := capture.Install(ctx, db, pgcapture.Dialect, table); err != nil {
		log.Print(err) // no server at this address here
		return
	}
	reader, err := capture.NewReader(db, pgcapture.Dialect, capture.Config{Publisher: live.NewMemoryLayer()})
	if err != nil {
		log.Fatal(err)
	}
	go reader.Run(ctx)
}
