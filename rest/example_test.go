package rest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// Note is the model the example serves.
type Note struct {
	ID   uint   `json:"id"`
	Text string `json:"text"`
}

// A view defined once serves REST here, and real-time subscribers when it
// is registered with a live.Router.
func Example() {
	dir, err := os.MkdirTemp("", "rest-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "notes.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	if err := db.AutoMigrate(&Note{}); err != nil {
		log.Fatal(err)
	}

	notes := &gormlive.View[Note]{
		Label:    "notes.Note",
		DB:       db,
		Writable: []string{"text"}, // what clients may write; the rest is read-only
		PageSize: 2,
		Validate: func(ctx context.Context, req *live.Request, n *Note) error {
			if n.Text == "" {
				return gormlive.FieldErrors{"text": {"This field may not be blank."}}
			}
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/api/notes/", http.StripPrefix("/api/notes", rest.Handler(notes, rest.Config{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	do := func(method, path, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answer := strings.ReplaceAll(string(b), srv.URL, "http://example.com") // the test server's port varies
		fmt.Println(strings.TrimSpace(fmt.Sprint(method, " ", path, " ", res.StatusCode, " ", answer)))
	}
	do("POST", "/api/notes/", `{"text":"buy milk"}`)
	do("POST", "/api/notes/", `{"text":""}`)
	do("PATCH", "/api/notes/1/", `{"text":"buy oat milk","id":7}`)
	do("POST", "/api/notes/", `{"text":"walk the dog"}`)
	do("POST", "/api/notes/", `{"text":"call mum"}`)
	do("GET", "/api/notes/?offset=2", "")
	do("DELETE", "/api/notes/1/", "")
	do("GET", "/api/notes/1/", "")
	// Output:
	// POST /api/notes/ 201 {"id":1,"text":"buy milk"}
	// POST /api/notes/ 400 {"text":["This field may not be blank."]}
	// PATCH /api/notes/1/ 200 {"id":1,"text":"buy oat milk"}
	// POST /api/notes/ 201 {"id":2,"text":"walk the dog"}
	// POST /api/notes/ 201 {"id":3,"text":"call mum"}
	// GET /api/notes/?offset=2 200 {"count":3,"next":null,"previous":"http://example.com/api/notes/?limit=2","results":[{"id":3,"text":"call mum"}]}
	// DELETE /api/notes/1/ 204
	// GET /api/notes/1/ 404 {"detail":"Not found."}
}
