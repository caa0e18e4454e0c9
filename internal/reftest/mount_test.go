package reftest

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/glebarez/sqlite"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// A live.Router is an http.Handler: it mounts under any router that takes
// one, with the router's own adapter for http.Handler and no adapter of
// ours. The README quotes these three functions' bodies.

func mountChi(router *live.Router) http.Handler {
	r := chi.NewRouter()
	r.Handle("/ws/subscribe/", router)
	return r
}

func mountGin(router *live.Router) http.Handler {
	g := gin.New()
	g.GET("/ws/subscribe/", gin.WrapH(router))
	return g
}

func mountEcho(router *live.Router) http.Handler {
	e := echo.New()
	e.GET("/ws/subscribe/", echo.WrapHandler(router))
	return e
}

// TestMount serves a router under chi, gin and echo, and checks that a
// client subscribes through each and receives a broadcast.
func TestMount(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, tc := range []struct {
		name  string
		mount func(*live.Router) http.Handler
	}{
		{"chi", mountChi}, {"gin", mountGin}, {"echo", mountEcho},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.db")
			a := newApp(t, sqlKind, sqlite.Open("file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"), capture.SQLite)
			srv := httptest.NewServer(tc.mount(a.router(a.todoView())))
			t.Cleanup(srv.Close)
			list := a.makeList("groceries")
			c := livetest.ConnectURL(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/subscribe/", nil)
			subscribe(t, c, map[string]any{"request_id": 1, "model": "test_app.Todo", "group_by": "list_id", "value": list.ID})
			todo := a.makeTodo(list, "buy milk")
			receive(t, c, 1, "CREATED", todoJSON(todo))
		})
	}
}
