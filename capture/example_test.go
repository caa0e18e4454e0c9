package capture_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	_ "github.com/glebarez/go-sqlite"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/live"
)

// printer is a live.Publisher that prints what it is given.
type printer chan live.Change

func (p printer) Publish(_ context.Context, changes []live.Change) error {
	for _, c := range changes {
		p <- c
	}
	return nil
}

func Example() {
	dir, _ := os.MkdirTemp("", "capture-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, list_id INTEGER, title TEXT)`); err != nil {
		panic(err)
	}

	// Once, at every start: the outbox and the triggers of the tasks table.
	err = capture.Install(ctx, db, capture.SQLite, capture.Table{
		Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"},
	})
	if err != nil {
		panic(err)
	}
	changes := make(printer, 10)
	r, err := capture.NewReader(db, capture.SQLite, capture.Config{
		Publisher: changes, // usually the application's live.Layer
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- r.Run(runCtx) }()

	// Any write, by any means, is captured once committed.
	db.Exec(`INSERT INTO tasks (id, list_id, title) VALUES (1, 14, 'write the docs')`)
	db.Exec(`UPDATE tasks SET list_id = 15 WHERE id = 1`)
	r.Nudge()
	for range 2 {
		c := <-changes
		fmt.Println(c.Seq, c.Op, c.Model, c.PK, c.Old, c.New)
	}
	stop()
	<-done
	// Output:
	// 1 insert todolist.Task 1 map[] map[list_id:14]
	// 2 update todolist.Task 1 map[list_id:14] map[list_id:15]
}
