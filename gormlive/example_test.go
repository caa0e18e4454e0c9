package gormlive_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// A Task belongs to a list and to the user who wrote it.
type Task struct {
	ID     int64  `json:"id"`
	Text   string `json:"text"`
	ListID int64  `json:"list_id"`
	Owner  string `json:"-"`
}

// A View serves its users only their own tasks, a list at a time or one
// by one. The hub of a live.Router calls what this example calls by hand:
// Subscribe when a client subscribes, Members to learn what the client
// sees, and Fetch when rows change.
func ExampleView() {
	dir, err := os.MkdirTemp("", "gormlive-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "tasks.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	if err := db.AutoMigrate(&Task{}); err != nil {
		log.Fatal(err)
	}
	db.Create([]Task{
		{ID: 1, Text: "buy milk", ListID: 14, Owner: "alice"},
		{ID: 2, Text: "walk the dog", ListID: 14, Owner: "alice"},
		{ID: 3, Text: "feed the cat", ListID: 14, Owner: "bob"},
	})

	tasks := &gormlive.View[Task]{
		Label:       "todolist.Task",
		DB:          db,
		GroupFields: []string{"list_id"},
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			return db.Where("owner = ?", req.UserID), nil
		},
		Permit: func(ctx context.Context, req *live.Request) error {
			if req.Anonymous() {
				return live.ErrForbidden
			}
			return nil
		},
	}
	if err := tasks.Check(); err != nil {
		log.Fatal(err)
	}

	// {"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": 14}
	// from alice:
	ctx := context.Background()
	scope, err := tasks.Subscribe(ctx, &live.Request{
		User: "alice", UserID: "alice",
		Action: "list", GroupBy: "list_id", Value: "14",
	})
	if err != nil {
		log.Fatal(err)
	}
	members, err := scope.Members(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range members {
		fmt.Println("member", m.PK, string(m.ID))
	}

	// Tasks 2 and 3 changed: alice sees the new state of hers only.
	db.Model(&Task{}).Where("id IN ?", []int{2, 3}).Update("text", "done")
	changed, err := scope.Fetch(ctx, []string{"2", "3"})
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range changed {
		fmt.Println("changed", c.PK, string(c.Data))
	}

	// An anonymous client is refused.
	_, err = tasks.Subscribe(ctx, &live.Request{Action: "retrieve", GroupBy: live.PK, Value: "1"})
	fmt.Println(err)
	// Output:
	// member 1 {"id":1}
	// member 2 {"id":2}
	// changed 2 {"id":2,"text":"done","list_id":14}
	// 403: You do not have permission to perform this action.
}
