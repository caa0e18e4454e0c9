// Package todoapp is the example app of restlive: a to-do list whose REST
// API and live WebSocket subscriptions are served from the same view
// definitions, with a web page that stays current without reloading.
// Command todolist (the parent directory) serves it; the benchmark command
// and the tests start it in-process.
package todoapp

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive"
	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgcapture"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/metrics"
	"github.com/restlive/restlive/rest"
)

// The to-do app: lists, owned by users, public or private, holding tasks.
//
//   - A public list is visible to everyone; a private one only to its
//     owner. Only logged-in users create lists, which they then own; only
//     the owner changes or deletes a list.
//   - A task is visible exactly when its list is. Whoever sees a list may
//     add, change and delete its tasks (on a public list, anyone at all).
//
// One gormlive.View per model says all of that, once: package rest serves
// it at /api/lists/ and /api/tasks/, and the live.Router serves the same
// View to WebSocket subscribers at /ws/subscribe/.

// List is a to-do list: todolist.List.
type List struct {
	ID      uint   `json:"id" gorm:"primaryKey"`
	Name    string `json:"name" gorm:"size:200;not null"`
	Public  bool   `json:"public" gorm:"not null"`
	OwnerID uint   `json:"owner" gorm:"not null;index"`
	Owner   *User  `json:"-" gorm:"constraint:OnDelete:CASCADE"`
}

// Task is an item of a list: todolist.Task.
type Task struct {
	ID     uint   `json:"id" gorm:"primaryKey"`
	Text   string `json:"text" gorm:"size:1000;not null"`
	Done   bool   `json:"done" gorm:"not null"`
	ListID uint   `json:"list" gorm:"not null;index"`
	// Deleting a list deletes its tasks, in the database, so that the
	// capture triggers see (and subscribers are told of) each one.
	List *List `json:"-" gorm:"constraint:OnDelete:CASCADE"`
	// Who may see the task's list, read by queryTasks for PermitObject.
	ListPublic bool `json:"-" gorm:"->;-:migration"`
	ListOwner  uint `json:"-" gorm:"->;-:migration"`
}

const (
	// maxIdleConns is how many database connections stay open while idle.
	maxIdleConns = 16
	// maxOpenConns is Config.MaxOpenConns's default: a thousand clients
	// reconnecting at once after a deploy subscribe at once, and without a
	// bound each of their reads would open a connection (a process, on
	// PostgreSQL) until the server refuses them. Past it, queries wait for
	// a connection, within their request's deadline.
	maxOpenConns = 64

	maxNameLen = 200
	maxTextLen = 1000
)

//go:embed web
var webFS embed.FS

// Config configures the app. Its zero value serves todolist.db in the
// working directory.
type Config struct {
	// DB is the database: the path of a SQLite file, created and migrated
	// if missing, or a postgres:// URL. Defaults to "todolist.db".
	DB string
	// MaxOpenConns bounds the database connections this process opens.
	// Defaults to 64; processes that share one PostgreSQL server share
	// its cores too, and may want fewer each.
	MaxOpenConns int
	// Logger receives one line per request and per WebSocket connection,
	// and the errors. Defaults to slog.Default().
	Logger *slog.Logger
	// BcryptCost is the cost of password hashes. Defaults to
	// bcrypt.DefaultCost.
	BcryptCost int
	// LoginRate is how many logins and registrations per second one
	// address may try, in bursts of up to ten times as many; a username
	// may be tried a fifth as often. Beyond it they are answered 429.
	// Defaults to 0.5; negative means no limit (the benchmark registers
	// thousands of users from one address).
	LoginRate float64
	// RequestTimeout bounds the reading of a request and the writing of
	// its answer (not WebSockets, which the router keeps alive with pings).
	// Defaults to 30 seconds.
	RequestTimeout time.Duration
	// LayerName names Layer in metrics and in /readyz: "redis", "nats".
	LayerName string
	// NoMetrics leaves the router without an Observer (and /metrics
	// without restlive's metrics): the benchmark measures what they cost.
	NoMetrics bool
	// ConfigureLive, if set, changes the router's configuration before
	// the router is made: tests set small limits with it.
	ConfigureLive func(*live.Config)
	// OriginPatterns are the hosts of cross-origin pages allowed to open
	// the WebSocket (see live.Config). Defaults to none: only the app's
	// own page.
	OriginPatterns []string
	// Layer carries changes from the outbox reader to the WebSockets.
	// Defaults to a memory layer of the app's own; a Redis or NATS layer
	// makes the app one of many processes sharing a database. The app
	// does not close it.
	Layer live.Layer
	// Dialector, when set, opens the database in place of the driver DB
	// names, which still selects the SQL dialect (a postgres:// URL or a
	// SQLite path). The benchmark uses it to count queries at the driver.
	Dialector gorm.Dialector
	// Views says how the lists and tasks are served: "gorm", by gormlive
	// views and package rest, or "sql", by sqlview views and REST
	// handlers of the app's own written in SQL (sqlmode.go). Both serve
	// the same answers and broadcasts, byte for byte. Defaults to "gorm".
	Views string
}

// The modes of Config.Views.
const (
	ViewsGORM = "gorm"
	ViewsSQL  = "sql"
)

// App is the running app: an http.Handler serving the page, the REST API
// and the WebSocket endpoint, and the database. Close stops it.
type App struct {
	handler http.Handler
	log     *slog.Logger
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect capture.Dialect
	layer   metrics.Layer // the broker's, if any
	// api serves the REST API and the WebSocket endpoint, and stop shuts
	// it down: a restlive.Server, or the SQL mode's parts, whose router
	// and outbox reader these are.
	api    http.Handler
	stop   func(ctx context.Context) error
	router *live.Router
	reader *capture.Reader

	requestTimeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

// New opens and migrates the database, installs the capture triggers
// and starts reading the outbox. The app serves requests until Close.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.DB == "" {
		cfg.DB = "todolist.db"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.MaxOpenConns <= 0 {
		cfg.MaxOpenConns = maxOpenConns
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Views == "" {
		cfg.Views = ViewsGORM
	}
	if cfg.Views != ViewsGORM && cfg.Views != ViewsSQL {
		return nil, fmt.Errorf("todolist: views %q: want %q or %q", cfg.Views, ViewsGORM, ViewsSQL)
	}
	a := &App{log: cfg.Logger, requestTimeout: cfg.RequestTimeout}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := a.openDB(cfg.DB, cfg.Dialector, cfg.MaxOpenConns); err != nil {
		return nil, err
	}
	if err := a.migrate(ctx); err != nil {
		return nil, err
	}
	authn, err := newAuth(a.db, a.log, cfg.BcryptCost, cfg.LoginRate)
	if err != nil {
		return nil, fmt.Errorf("todolist: %w", err)
	}

	// Metrics of the process and of restlive, on a registry of the app's
	// own, at /metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg)
	if err != nil {
		return nil, fmt.Errorf("todolist: %w", err)
	}

	// The router of both models' subscriptions, served with their REST
	// APIs and the capture of their tables in the mode of cfg.Views.
	liveCfg := live.Config{
		Layer:          cfg.Layer,
		Authenticate:   authn.identify,
		OriginPatterns: cfg.OriginPatterns,
		Logger:         a.log,
	}
	if !cfg.NoMetrics {
		liveCfg.Observer = m
	}
	if cfg.ConfigureLive != nil {
		cfg.ConfigureLive(&liveCfg)
	}
	if cfg.Views == ViewsSQL {
		err = a.startSQL(ctx, liveCfg)
	} else {
		err = a.startGORM(ctx, liveCfg)
	}
	if err != nil {
		return nil, fmt.Errorf("todolist: %w", err)
	}
	authn.router = a.router
	if err := a.watch(m, cfg); err != nil {
		return nil, fmt.Errorf("todolist: metrics: %w", err)
	}

	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, fmt.Errorf("todolist: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/auth/register", postOnly(authn.limited(authn.register)))
	mux.Handle("/api/auth/login", postOnly(authn.limited(authn.login)))
	mux.Handle("/api/auth/logout", postOnly(authn.logout))
	mux.Handle("/api/lists/", a.api)
	mux.Handle("/api/tasks/", a.api)
	mux.Handle("/ws/subscribe/", a.api)
	// ContinueOnError: with the database down, /metrics still answers
	// with all it can (the reader's lag, which reads it, left out).
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", a.healthz)
	mux.HandleFunc("/readyz", a.readyz)
	mux.Handle("/", readOnly(http.FileServerFS(web)))
	a.handler = accessLog(a.log, mux)
	return a, nil
}

// ServeHTTP serves the page, the REST API and the WebSocket endpoint.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Shutdown closes the WebSockets (with 1001) and waits for them to end,
// and stops the outbox reader, within ctx's deadline.
func (a *App) Shutdown(ctx context.Context) error {
	if a.stop == nil {
		return nil
	}
	return a.stop(ctx)
}

// Close shuts the app down without a deadline and closes the database. It
// is safe to call more than once.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		errs := []error{a.Shutdown(context.Background())}
		if a.sqlDB != nil {
			errs = append(errs, a.sqlDB.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// startGORM serves the lists and tasks with gormlive views: one
// restlive.Server for both models, their REST APIs, their subscriptions,
// and the capture of their tables.
func (a *App) startGORM(ctx context.Context, lcfg live.Config) error {
	server, err := restlive.New(restlive.Config{
		DB:      a.db,
		Capture: a.dialect,
		Live:    lcfg,
		REST:    rest.Config{Challenge: "Token"},
	})
	if err != nil {
		return err
	}
	lists, tasks := a.views()
	restlive.Handle(server, "/api/lists/", lists)
	restlive.Handle(server, "/api/tasks/", tasks)
	if err := server.Start(ctx); err != nil {
		return err
	}
	a.api, a.stop, a.router, a.reader = server, server.Shutdown, server.Router(), server.Reader()
	return nil
}

// openDB opens dsn: PostgreSQL for a postgres:// URL, else a SQLite file,
// through custom if it is set.
func (a *App) openDB(dsn string, custom gorm.Dialector, maxOpen int) error {
	gcfg := &gorm.Config{
		Logger: logger.Discard,
		// Unique and foreign key violations become gorm.ErrDuplicatedKey
		// and gorm.ErrForeignKeyViolated, which become 400 answers.
		TranslateError: true,
	}
	var (
		dialector gorm.Dialector
		dialect   capture.Dialect
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		dialector, dialect = postgres.Open(dsn), pgcapture.Dialect
	} else {
		if strings.ContainsAny(dsn, "?#") {
			return fmt.Errorf("todolist: SQLite path %q: '?' and '#' are not allowed", dsn)
		}
		// WAL lets the outbox reader read while requests write; the busy
		// timeout makes a writer wait for the reader's cursor update
		// rather than fail; foreign keys make deleting a list delete its
		// tasks. The pragmas run on every connection of the pool.
		dialector = sqlite.Open(dsn + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)")
		dialect = capture.SQLite
	}
	if custom != nil {
		dialector = custom
	}
	db, err := gorm.Open(dialector, gcfg)
	if err != nil {
		return fmt.Errorf("todolist: open database: %w", err)
	}
	a.db, a.dialect = db, dialect
	if a.sqlDB, err = db.DB(); err != nil {
		return fmt.Errorf("todolist: open database: %w", err)
	}
	// database/sql keeps 2 idle connections by default. The hub checks
	// several scopes at once for each change, and requests come in
	// parallel: with so few, most queries would open a connection (a
	// process, on PostgreSQL) and close it again.
	a.sqlDB.SetMaxIdleConns(min(maxIdleConns, maxOpen))
	a.sqlDB.SetMaxOpenConns(maxOpen)
	a.sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return nil
}

// migrate creates or updates the tables. (The server installs the capture
// triggers after, since migrating may rebuild a table and drop its
// triggers.)
func (a *App) migrate(ctx context.Context) error {
	// Processes started together on an empty database race to create the
	// tables: all but one fail with "already exists". Once the winner is
	// done, a second look finds the tables and succeeds.
	var err error
	for attempt := range 5 {
		if err = a.db.WithContext(ctx).AutoMigrate(&User{}, &Credential{}, &List{}, &Task{}); err == nil {
			return nil
		}
		a.log.Warn("todolist: migrate failed; trying again", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	return fmt.Errorf("todolist: migrate: %w", err)
}

// views defines todolist.List and todolist.Task as gormlive views: who
// sees and may change what, filters, and validation. The rules are the
// functions below, which the SQL mode's views (sqlmode.go) share.
func (a *App) views() (*gormlive.View[List], *gormlive.View[Task]) {
	lists := &gormlive.View[List]{
		Label: "todolist.List",
		DB:    a.db,
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			return visibleLists(db, req), nil
		},
		Permit: permitList,
		PermitObject: func(_ context.Context, req *live.Request, l *List) error {
			return permitListObject(req, l.OwnerID)
		},
		Decode:   decodeList,
		Validate: func(_ context.Context, req *live.Request, l *List) error { return validateList(req, l) },
	}
	tasks := &gormlive.View[Task]{
		Label:       "todolist.Task",
		DB:          a.db,
		GroupFields: []string{"list_id"},
		// The filters, which subscriptions may carry as query parameters;
		// django-rest-live 0.4's "list" subscribes to the whole queryset
		// narrowed by them.
		QueryParams: []string{"list", "done", "search"},
		ListAll:     true,
		// A task is visible when its list is: a list made private hides
		// its tasks from the subscribers who no longer see it.
		Dependencies: []live.Dependency{{Model: "todolist.List", Field: "list_id"}},
		Query:        queryTasks,
		// Who sees a task is decided per task, from its list, not in the
		// query: so the query reads nothing of the user, and everyone
		// watching a list shares one query per change.
		QueryVary: func(*live.Request) string { return "" },
		PermitObject: func(_ context.Context, req *live.Request, t *Task) error {
			return permitTask(req, t.ListPublic, t.ListOwner)
		},
		Decode: decodeTask,
		Validate: func(ctx context.Context, req *live.Request, t *Task) error {
			// The task's list, new or moved to, must be one the user sees
			// (which is what makes a task writable).
			var n int64
			q := visibleLists(gormlive.DB(ctx, a.db).Model(&List{}), req).Where("lists.id = ?", t.ListID)
			if err := q.Count(&n).Error; err != nil {
				return err
			}
			return validateTask(t, n > 0)
		},
	}
	return lists, tasks
}

// A condition is SQL with ? parameters and their arguments: what both
// modes' querysets add to their WHERE clauses.
type condition struct {
	sql  string
	args []any
}

// listsVisible is the condition of the lists req may see.
func listsVisible(req *live.Request) condition {
	if u := userOf(req.User); u != nil {
		return condition{"lists.public OR lists.owner_id = ?", []any{u.ID}}
	}
	return condition{"lists.public", nil}
}

// visibleLists narrows db, a query of lists, to those req may see.
func visibleLists(db *gorm.DB, req *live.Request) *gorm.DB {
	c := listsVisible(req)
	return db.Where(c.sql, c.args...)
}

// permitList lets only logged-in users create lists.
func permitList(_ context.Context, req *live.Request) error {
	if req.Action == live.ActionCreate && req.Anonymous() {
		return live.ErrForbidden
	}
	return nil
}

// permitListObject lets whoever sees a list read it, and only its owner
// write it. A list the user cannot see never gets here: it is not found.
func permitListObject(req *live.Request, owner uint) error {
	if req.Action.Read() {
		return nil
	}
	if u := userOf(req.User); u != nil && owner == u.ID {
		return nil
	}
	return live.ErrForbidden
}

// permitTask makes a task visible, and writable, when its list is.
func permitTask(req *live.Request, listPublic bool, listOwner uint) error {
	if u := userOf(req.User); listPublic || u != nil && listOwner == u.ID {
		return nil
	}
	return live.ErrNotFound
}

// validateList sets a new list's owner and checks its name.
func validateList(req *live.Request, l *List) error {
	if req.Action == live.ActionCreate {
		l.OwnerID = userOf(req.User).ID
	}
	errs := gormlive.FieldErrors{}
	checkText(errs, "name", l.Name, maxNameLen)
	return errs.Err()
}

// validateTask checks a task's text, and that its list is one the user
// sees.
func validateTask(t *Task, listVisible bool) error {
	errs := gormlive.FieldErrors{}
	checkText(errs, "text", t.Text, maxTextLen)
	if !listVisible {
		errs.Add("list", fmt.Sprintf(`Invalid pk "%d" - object does not exist.`, t.ListID))
	}
	return errs.Err()
}

// taskFilters are the conditions of the filters ?list=, ?done= and
// ?search=.
func taskFilters(req *live.Request) ([]condition, error) {
	var conds []condition
	if v := req.Query.Get("list"); v != "" {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, live.Errorf(400, "list: %q is not a list id", v)
		}
		conds = append(conds, condition{"tasks.list_id = ?", []any{id}})
	}
	if v := req.Query.Get("done"); v != "" {
		done, err := strconv.ParseBool(v)
		if err != nil {
			return nil, live.Errorf(400, "done: %q is neither true nor false", v)
		}
		conds = append(conds, condition{"tasks.done = ?", []any{done}})
	}
	if v := req.Query.Get("search"); v != "" {
		// A substring, whatever LIKE's wildcards it holds. LOWER folds
		// ASCII letters only on SQLite, all of them on PostgreSQL.
		pattern := "%" + likeEscaper.Replace(strings.ToLower(v)) + "%"
		conds = append(conds, condition{`LOWER(tasks.text) LIKE ? ESCAPE '\'`, []any{pattern}})
	}
	return conds, nil
}

// queryTasks is the tasks' queryset, narrowed by the filters, with who
// may see each task's list: the view's PermitObject leaves out those of
// lists req cannot see.
func queryTasks(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
	db = db.Select("tasks.*, lists.public AS list_public, lists.owner_id AS list_owner").
		Joins("JOIN lists ON lists.id = tasks.list_id")
	conds, err := taskFilters(req)
	if err != nil {
		return nil, err
	}
	for _, c := range conds {
		db = db.Where(c.sql, c.args...)
	}
	return db, nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// decodeList reads a list's body: name (required but on PATCH) and
// public. The owner is the server's to set.
func decodeList(_ context.Context, req *live.Request, body []byte, l *List) error {
	var in struct {
		Name   *string `json:"name"`
		Public *bool   `json:"public"`
	}
	if err := gormlive.DecodeJSON(body, &in); err != nil {
		return err
	}
	errs := gormlive.FieldErrors{}
	if in.Name != nil {
		l.Name = *in.Name
	} else if req.Action != live.ActionPartialUpdate {
		errs.Add("name", "This field is required.")
	}
	if in.Public != nil {
		l.Public = *in.Public
	}
	return errs.Err()
}

// decodeTask reads a task's body: text and list (required but on PATCH),
// and done.
func decodeTask(_ context.Context, req *live.Request, body []byte, t *Task) error {
	var in struct {
		Text *string `json:"text"`
		Done *bool   `json:"done"`
		List *uint   `json:"list"`
	}
	if err := gormlive.DecodeJSON(body, &in); err != nil {
		return err
	}
	errs := gormlive.FieldErrors{}
	partial := req.Action == live.ActionPartialUpdate
	if in.Text != nil {
		t.Text = *in.Text
	} else if !partial {
		errs.Add("text", "This field is required.")
	}
	if in.List != nil {
		t.ListID = *in.List
	} else if !partial {
		errs.Add("list", "This field is required.")
	}
	if in.Done != nil {
		t.Done = *in.Done
	}
	return errs.Err()
}

// checkText adds field's error if s is blank or longer than max runes.
func checkText(errs gormlive.FieldErrors, field, s string, max int) {
	switch {
	case strings.TrimSpace(s) == "":
		errs.Add(field, "This field may not be blank.")
	case len([]rune(s)) > max:
		errs.Add(field, fmt.Sprintf("Ensure this field has no more than %d characters.", max))
	}
}

// readOnly answers 405 to requests other than GET and HEAD. (Patterns
// with methods, "GET /" and "POST /api/auth/login", would send a GET of
// the login path to the page's file server, which would answer 404.)
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": `Method "` + r.Method + `" not allowed.`})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// postOnly answers 405 to requests other than POST.
func postOnly(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": `Method "` + r.Method + `" not allowed.`})
			return
		}
		next(w, r)
	})
}

// accessLog logs one line per request, when it has been answered. A
// request upgraded to a WebSocket is left to the router, which logs the
// connection and its end.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		info := &requestInfo{}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		if rec.status == http.StatusSwitchingProtocols {
			return
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "http",
			slog.String("method", r.Method),
			slog.String("path", r.URL.RequestURI()),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start).Round(time.Microsecond)),
			slog.String("remote", r.RemoteAddr),
			slog.String("user", info.user),
		)
	})
}

// requestInfo carries what inner handlers learn about a request to the
// access log: the user, whom the auth middleware finds.
type requestInfo struct{ user string }

type requestInfoKey struct{}

// recorder notes the status and size of a response. Unwrap gives
// http.ResponseController (and the WebSocket upgrade) the writer's
// Hijacker and Flusher.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
