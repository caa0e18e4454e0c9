package pgxview_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/sqlview"
	"github.com/restlive/restlive/sqlview/pgxview"
)

type Task struct {
	ID     int64  `db:"id" json:"id"`
	Text   string `db:"text" json:"text"`
	ListID int64  `db:"list_id" json:"list_id"`
}

// A view that reads through a pgx pool: Pool adapts it, and the view
// numbers its parameters $1, $2... as PostgreSQL wants.
func ExamplePool() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	tasks := &sqlview.View[Task]{
		Label:       "todolist.Task",
		DB:          pgxview.Pool(pool),
		Table:       "tasks",
		GroupFields: []string{"list_id"},
	}
	router := live.NewRouter(live.Config{})
	router.Register(tasks)
}
