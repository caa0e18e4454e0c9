package todoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/internal/testenv"
)

// TestBrowser runs the page in real headless Chromium (browsertest/test.mjs,
// driven by playwright-core): two pages of one user open the same list; a
// task added, ticked, edited and moved in one changes in the other without
// a reload; an anonymous page on a public list loses its WebSocket, says
// so, reconnects by itself and catches up, and follows its filters; the
// index of lists follows its pages. Then the server restarts on the same
// port and database while another process writes to the database and a
// page writes through the API as soon as it is back: both pages end
// showing exactly what GET answers, having resumed every collection rather
// than loaded it again. Last, a list made private leaves the anonymous
// page, and a logout takes the private lists from the user's other tab.
//
// It needs RESTLIVE_CHROMIUM (the browser binary, as ./test.sh sets it)
// and node; it installs playwright-core with npm when it is missing. Set
// SCREENSHOT=/path.png to keep a picture of the page.
func TestBrowser(t *testing.T) {
	t.Parallel()
	// The script reads the browser's path from the same variable.
	testenv.Need(t, "RESTLIVE_CHROMIUM")
	node := need(t, "node")
	dir, err := filepath.Abs(filepath.Join("..", "browsertest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		npm := need(t, "npm")
		runCommand(t, 5*time.Minute, dir, npm, "install", "--no-audit", "--no-fund")
	}
	s := startRestartable(t, filepath.Join(t.TempDir(), "todolist.db"))
	control := httptest.NewServer(s.control())
	t.Cleanup(control.Close)
	out, code := runCommand(t, 4*time.Minute, dir, node, "test.mjs", s.url, control.URL)
	switch code {
	case 0:
		t.Logf("browser test passed:\n%s", out)
	case 2:
		t.Fatalf("browser test could not run (exit 2):\n%s", out)
	default:
		t.Fatalf("browser test failed (exit %d):\n%s", code, out)
	}
}

// restartable is the app served on one address and one SQLite file, which
// the browser test stops and starts again there, as a deployment restarts
// its server: a new App on the same port and database.
type restartable struct {
	t    *testing.T
	dsn  string
	addr string
	url  string
	logs syncBuffer // of every run

	mu   sync.Mutex
	stop func() error // nil while stopped
	runs int
}

// startRestartable serves the app on dsn, on a free loopback port, until
// the test ends. The log of every run is shown if the test fails.
func startRestartable(t *testing.T, dsn string) *restartable {
	s := &restartable{t: t, dsn: dsn, addr: "127.0.0.1:0"}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + s.addr
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stop != nil {
			if err := s.stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("server log:\n%s", &s.logs)
		}
	})
	return s
}

// start starts a new App on s's database and address. Called with s.mu
// held, or before s is shared.
func (s *restartable) start() error {
	s.runs++
	fmt.Fprintf(&s.logs, "--- run %d\n", s.runs)
	app, err := New(s.t.Context(), Config{
		DB:         s.dsn,
		Logger:     slog.New(slog.NewTextHandler(&s.logs, nil)),
		BcryptCost: bcrypt.MinCost,
		LoginRate:  -1, // the script registers several users from one address
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		app.Close()
		return err
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln) }()
	s.stop = func() error {
		cancel()
		return errors.Join(<-served, app.Close())
	}
	return nil
}

// control is what the browser test asks of the server, on a port of its
// own: POST /stop (shut down as SIGTERM would: the WebSockets close with
// 1001), POST /sql (while stopped, run statements on the database file as
// another process would, in one transaction: {"statements": [{"sql",
// "args"}]}, answered with the rows each affected), POST /start.
func (s *restartable) control() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stop == nil {
			http.Error(w, "already stopped", http.StatusConflict)
			return
		}
		err := s.stop()
		s.stop = nil
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stop != nil {
			http.Error(w, "already running", http.StatusConflict)
			return
		}
		if err := s.start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sql", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Statements []struct {
				SQL  string `json:"sql"`
				Args []any  `json:"args"`
			} `json:"statements"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stop != nil {
			// The point is writes no server sees being made.
			http.Error(w, "stop the server first", http.StatusConflict)
			return
		}
		db, err := gorm.Open(sqlite.Open(s.dsn+"?_pragma=busy_timeout(10000)"), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if sqlDB, err := db.DB(); err == nil {
			defer sqlDB.Close()
		}
		var rows []int64
		err = db.Transaction(func(tx *gorm.DB) error {
			for _, st := range in.Statements {
				res := tx.Exec(st.SQL, st.Args...)
				if res.Error != nil {
					return fmt.Errorf("%s: %w", st.SQL, res.Error)
				}
				rows = append(rows, res.RowsAffected)
			}
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"rows": rows})
	})
	return mux
}

// need returns the path of the command name, skipping the test when it is
// missing (failing it under CI, where ./test.sh installs it).
func need(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: run the tests with ./test.sh", name)
		}
		t.Skipf("%s is not installed: run the tests with ./test.sh for this one", name)
	}
	return path
}

// runCommand runs a command in dir for at most timeout, and returns its combined
// output and exit code. On timeout it is sent SIGTERM, then killed if it
// has not exited 10 seconds later. It fails the test if the command
// cannot start.
func runCommand(t *testing.T, timeout time.Duration, dir, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// SIGTERM lets the script close its browser; WaitDelay bounds how long
	// it may take, and how long its children may hold the output open.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	out := strings.TrimSpace(string(b))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case ctx.Err() != nil:
		t.Fatalf("%s %s: stopped after %v:\n%s", name, strings.Join(args, " "), timeout, out)
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return out, exit.ExitCode()
	}
	t.Fatalf("%s %s: %v:\n%s", name, strings.Join(args, " "), err, out)
	return "", 0
}
