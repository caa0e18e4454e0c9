package live_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// Task is a GORM model served over REST, to be made real-time.
type Task struct {
	ID     uint   `json:"id"`
	Text   string `json:"text"`
	Done   bool   `json:"done"`
	ListID uint   `json:"list"`
}

// A whole server: a GORM model, its view, the database triggers that
// capture every committed write, and the router that serves subscribers.
func ExampleRouter() {
	dir, _ := os.MkdirTemp("", "live-example")
	defer os.RemoveAll(dir)
	dsn := "file:" + filepath.Join(dir, "todo.db") + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Task{}); err != nil {
		log.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()

	// The view: what REST (package rest) and subscribers see of tasks.
	tasks := &gormlive.View[Task]{
		Label:       "todolist.Task",
		DB:          db,
		GroupFields: []string{"list_id"},
		QueryParams: []string{"search"},
		Writable:    []string{"text", "done", "list"},
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			if s := req.Query.Get("search"); s != "" {
				db = db.Where("LOWER(text) LIKE ?", "%"+strings.ToLower(s)+"%")
			}
			return db, nil
		},
	}

	// The router serves the WebSocket endpoint.
	router := live.NewRouter(live.Config{
		Authenticate: func(r *http.Request) (live.Identity, error) { return live.Identity{}, nil }, // anonymous
		Logger:       slog.New(slog.DiscardHandler),
	})
	router.Register(tasks)
	defer router.Close()

	// Triggers record every committed write in an outbox; the reader
	// publishes them to the router's layer.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	table, err := tasks.CaptureTable() // "tasks", its key and list_id
	if err != nil {
		log.Fatal(err)
	}
	if err := capture.Install(ctx, sqlDB, capture.SQLite, table); err != nil {
		log.Fatal(err)
	}
	reader, err := capture.NewReader(sqlDB, capture.SQLite, capture.Config{
		Publisher: router.Layer(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	go reader.Run(ctx)

	mux := http.NewServeMux()
	mux.Handle("/ws/subscribe/", router)
	mux.Handle("/api/tasks/", http.StripPrefix("/api/tasks", rest.Handler(tasks, rest.Config{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A client subscribes to list 14, then a task is written: by GORM here,
	// but raw SQL or another process would do as well.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/subscribe/", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte(`{"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": 14, "ack": true}`))
	read := func() string {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, msg, err := ws.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		return string(msg)
	}
	fmt.Println(read())
	task := Task{Text: "buy milk", ListID: 14}
	db.Create(&task)
	fmt.Println(read())
	db.Model(&task).Update("done", true)
	fmt.Println(read())
	res, err := http.Get(srv.URL + "/api/tasks/1/") // REST serves the same bytes
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(string(body))
	db.Delete(&task)
	fmt.Println(read())
	// Output:
	// {"type":"subscribed","request_id":1}
	// {"type":"broadcast","request_id":1,"model":"todolist.Task","action":"CREATED","instance":{"id":1,"text":"buy milk","done":false,"list":14}}
	// {"type":"broadcast","request_id":1,"model":"todolist.Task","action":"UPDATED","instance":{"id":1,"text":"buy milk","done":true,"list":14}}
	// {"id":1,"text":"buy milk","done":true,"list":14}
	// {"type":"broadcast","request_id":1,"model":"todolist.Task","action":"DELETED","instance":{"id":1}}
}
