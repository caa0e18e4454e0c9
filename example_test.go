package restlive_test

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
	"regexp"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// Task is a GORM model served over REST, made real-time.
type Task struct {
	ID     uint   `json:"id"`
	Text   string `json:"text"`
	Done   bool   `json:"done"`
	ListID uint   `json:"list"`
}

// A whole server: a GORM model, its view, and one Server that serves it
// over REST and WebSocket and captures every committed write to its
// table.
func ExampleServer() {
	dir, _ := os.MkdirTemp("", "restlive-example")
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "todo.db") + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Task{}); err != nil {
		log.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()

	// The view: what REST clients and subscribers see of tasks, and what
	// clients may write.
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

	// One server: REST at /api/tasks/, subscriptions at /ws/subscribe/,
	// and the capture of the tasks table.
	srv, err := restlive.New(restlive.Config{
		DB: db,
		Live: live.Config{
			Authenticate: func(r *http.Request) (live.Identity, error) { return live.Identity{}, nil }, // anonymous
			Logger:       slog.New(slog.DiscardHandler),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	restlive.Handle(srv, "/api/tasks/", tasks)
	ctx := context.Background()
	if err := srv.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	web := httptest.NewServer(srv) // or mux.Handle("/", srv) behind your middleware
	defer web.Close()

	// A client subscribes to list 14, with a snapshot of it, then tasks
	// are written: through the REST API, and by GORM directly (raw SQL or
	// another process would do as well).
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(web.URL, "http")+"/ws/subscribe/", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte(`{"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": 14, "snapshot": true}`))
	read := func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, msg, err := ws.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		// Offsets name a position in the change sequence.
		fmt.Println(offset.ReplaceAllString(string(msg), `"offset":"…"`))
	}
	read() // the snapshot: empty
	read() // subscribed, with the offset to resume from
	res, err := http.Post(web.URL+"/api/tasks/", "application/json", strings.NewReader(`{"text":"buy milk","list":14}`))
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(string(body)) // REST answers the bytes the broadcast carries
	read()
	db.Model(&Task{}).Where("id = ?", 1).Update("done", true)
	read()
	db.Delete(&Task{}, 1)
	read()
	// Output:
	// {"type":"snapshot","request_id":1,"model":"todolist.Task","instances":[]}
	// {"type":"subscribed","request_id":1,"offset":"…"}
	// {"id":1,"text":"buy milk","done":false,"list":14}
	// {"type":"broadcast","request_id":1,"model":"todolist.Task","offset":"…","action":"CREATED","instance":{"id":1,"text":"buy milk","done":false,"list":14}}
	// {"type":"broadcast","request_id":1,"model":"todolist.Task","offset":"…","action":"UPDATED","instance":{"id":1,"text":"buy milk","done":true,"list":14}}
	// {"type":"broadcast","request_id":1,"model":"todolist.Task","offset":"…","action":"DELETED","instance":{"id":1}}
}

var offset = regexp.MustCompile(`"offset":"[^"]*"`)
