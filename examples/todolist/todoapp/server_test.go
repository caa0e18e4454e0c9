package todoapp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live/livetest"
)

// The tests run the real app, as main runs it, on a loopback port: a
// SQLite file in a temporary directory, or a fresh PostgreSQL database.

// server is the app serving on 127.0.0.1.
type server struct {
	app  *App
	url  string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port/ws/subscribe/
	logs *syncBuffer
	// stop shuts the server down as SIGTERM would, and returns what Serve
	// returned. It is safe to call more than once.
	stop func() error
}

// databases are the databases every end-to-end test runs on.
var databases = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "todolist.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresDB(t) }},
}

// modes are the app's two ways of serving its models (Config.Views):
// the end-to-end tests run against both, which must answer and broadcast
// the same bytes.
var modes = []string{ViewsGORM, ViewsSQL}

// eachMode runs test, in parallel, against a server of each mode on a
// fresh SQLite database.
func eachMode(t *testing.T, test func(t *testing.T, s *server)) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			test(t, startMode(t, databases[0].dsn(t), mode))
		})
	}
}

// startMode is start, with the views of mode.
func startMode(t *testing.T, dsn, mode string) *server {
	return startWith(t, dsn, func(c *Config) { c.Views = mode })
}

func startSQLite(t *testing.T) *server { return start(t, databases[0].dsn(t)) }

// start runs the app on dsn until the test ends. Its log is shown if the
// test fails.
func start(t *testing.T, dsn string) *server { return startWith(t, dsn, nil) }

// startWith is start, with configure changing the app's Config first.
func startWith(t testing.TB, dsn string, configure func(*Config)) *server {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		DB:     dsn,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		// The cheapest hash, and no bound on logins: the tests register
		// many users from one address, and the cost of bcrypt is not what
		// they test (TestLoginIsRateLimited sets the bound).
		BcryptCost: bcrypt.MinCost,
		LoginRate:  -1,
	}
	if configure != nil {
		configure(&cfg)
	}
	app, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		app.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	s := &server{
		app: app, logs: logs,
		url: "http://" + ln.Addr().String(),
		ws:  "ws://" + ln.Addr().String() + "/ws/subscribe/",
		stop: func() error {
			once.Do(func() {
				cancel()
				serveErr = <-served
			})
			return serveErr
		},
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := app.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return s
}

// user is a registered, logged-in user. A nil *user is anonymous.
type user struct {
	id      uint
	name    string
	token   string // from login
	session *http.Cookie
}

// header returns the headers that authenticate u with its token.
func (u *user) header() http.Header {
	if u == nil {
		return http.Header{}
	}
	return livetest.TokenHeader("Token", u.token)
}

// register registers and logs in a user named name.
func (s *server) register(t testing.TB, name string) *user {
	t.Helper()
	creds := `{"username":"` + name + `","password":"password-of-` + name + `"}`
	res := s.must(t, 201, "POST", "/api/auth/register", nil, creds)
	var reg struct {
		ID       uint   `json:"id"`
		Username string `json:"username"`
		Token    string `json:"token"`
	}
	res.decode(t, &reg)
	if reg.ID == 0 || reg.Username != name || len(reg.Token) < 32 {
		t.Fatalf("register %s: got %s", name, res.body)
	}
	res = s.must(t, 200, "POST", "/api/auth/login", nil, creds)
	var login struct {
		Token    string `json:"token"`
		ID       uint   `json:"id"`
		Username string `json:"username"`
	}
	res.decode(t, &login)
	if login.ID != reg.ID || login.Username != name || login.Token == "" {
		t.Fatalf("login %s: got %s", name, res.body)
	}
	u := &user{id: reg.ID, name: name, token: login.Token}
	for _, c := range res.cookies() {
		if c.Name == sessionCookie {
			u.session = c
		}
	}
	if u.session == nil {
		t.Fatalf("login %s set no session cookie: %v", name, res.header)
	}
	return u
}

// response is what a request got.
type response struct {
	code   int
	header http.Header
	body   string
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func (r response) cookies() []*http.Cookie {
	return (&http.Response{Header: r.header}).Cookies()
}

// do sends a request with header (nil for none) and, if body is not
// empty, a JSON body.
func (s *server) do(t testing.TB, method, path string, header http.Header, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{code: res.StatusCode, header: res.Header, body: string(b)}
}

// must sends a request as u (nil: anonymous, with its token) that must
// answer code.
func (s *server) must(t testing.TB, code int, method, path string, u *user, body string) response {
	t.Helper()
	res := s.do(t, method, path, u.header(), body)
	if res.code != code {
		who := "anonymous"
		if u != nil {
			who = u.name
		}
		t.Fatalf("%s %s %s as %s: got %d %s, want %d", method, path, body, who, res.code, res.body, code)
	}
	return res
}

// connect opens a WebSocket to the server as u (anonymous if nil), with
// its token.
func (s *server) connect(t *testing.T, u *user) *livetest.Communicator {
	t.Helper()
	return livetest.ConnectURL(t, s.ws, &livetest.Options{Header: u.header(), Timeout: 10 * time.Second})
}

// syncBuffer collects log output written by server goroutines.
type syncBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	written chan struct{} // closed and replaced by each Write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the log contains substr, failing the test after
// timeout: some lines are written by goroutines that finish after the
// event a test can observe.
func (s *syncBuffer) waitFor(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		found := strings.Contains(s.b.String(), substr)
		if s.written == nil {
			s.written = make(chan struct{})
		}
		written := s.written
		s.mu.Unlock()
		if found {
			return
		}
		select {
		case <-written:
		case <-deadline.C:
			t.Fatalf("the log lacks %s after %v:\n%s", substr, timeout, s)
		}
	}
}
