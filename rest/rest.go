// Package rest serves a GORM model as a JSON CRUD API from the same
// gormlive.View that package live serves to real-time subscribers, so REST
// clients and subscribers always agree on who sees what and what it looks
// like.
//
//	mux.Handle("/api/tasks/", http.StripPrefix("/api/tasks", rest.Handler(tasks, rest.Config{Authenticate: auth})))
//
// Responses follow Django REST Framework: instances as the view serializes
// them, lists paginated as {"count", "next", "previous", "results"}, errors
// as {"detail": "..."} or, for invalid input, {"field": ["message"]}.
package rest

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/internal/model/gormmodel"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest/drf"
)

// Config configures a Handler. Its zero value serves every request as
// anonymous, with the defaults below.
type Config struct {
	// Authenticate returns who makes r: the zero Identity when anonymous.
	// Give it the function live.Config takes, so that a user is the same
	// user on both sides. An error answers 401 when it is an *live.Error
	// with code 401 or 403 (a token that names no one), else 500.
	// Defaults to every request being anonymous.
	Authenticate func(r *http.Request) (live.Identity, error)
	// Args returns view keyword arguments that r carries besides the
	// lookup, such as a parent's ID in the mount point's path
	// (r.PathValue("list")). Only those the view's Args names reach it.
	// Defaults to none.
	Args func(r *http.Request) map[string]string
	// Challenge is the WWW-Authenticate header of a 401 answer, such as
	// `Token`. Defaults to none.
	Challenge string
	// MaxBodyBytes limits the size of request bodies: a larger one answers
	// 413. Defaults to 1 MiB.
	MaxBodyBytes int64
	// Logger receives the errors answered with 500, which the client is
	// not told about. Defaults to slog.Default().
	Logger *slog.Logger
}

// Handler returns an http.Handler that serves the model M of view. Relative
// to the path it is mounted at (mount it with http.StripPrefix), with or
// without a trailing slash:
//
//	GET    /           list: a page of the queryset (see below)
//	POST   /           create: 201 and the instance
//	GET    /{lookup}/  retrieve
//	PUT    /{lookup}/  update
//	PATCH  /{lookup}/  partial_update
//	DELETE /{lookup}/  destroy: 204
//
// {lookup} is the value of view.LookupField (the primary key by default);
// views read it from req.Args under the name LookupField, or "pk".
//
// Every request becomes a live.Request with the action above, Args and
// Query (only those the view's Args and QueryParams name; HTTP is r;
// GroupBy and Value are empty), and goes through view.Permit (403, or 401
// when anonymous), then view.Queryset. A list leaves out the instances
// PermitObject refuses for "list". An instance is looked up within the
// queryset and must pass PermitObject for "retrieve", or it answers 404 as
// if missing; then a write PermitObject refuses answers its error (403,
// 401 when anonymous).
//
// A list is paginated as Django REST Framework's LimitOffsetPagination:
// ?limit= (view.PageSize by default, at most view.MaxPageSize) and
// ?offset= select the page, answered as {"count": n, "next": url,
// "previous": url, "results": [...]}, in the queryset's order (by primary
// key unless Query orders it). count and the pages are of the instances
// the request sees.
//
// Writes run in one transaction each: the instance is read within the
// queryset (locked FOR UPDATE on PostgreSQL), checked, decoded, validated,
// written and read back, so a concurrent change cannot make the write hit
// a row the request may no longer see. Open SQLite with _txlock=immediate
// so that writers queue instead of retrying. Bodies are JSON objects,
// Content-Type application/json (else 415, which also keeps cross-site
// HTML forms out), of at most Config.MaxBodyBytes (else 413), decoded into
// view.Writable's fields (or by view.Decode) and checked by view.Validate.
// Only the columns a write changed are updated (an update that changes
// nothing does not write), associations are never written, and the
// instance is read back through the queryset, so computed fields appear in
// the answer.
//
// An instance in a response body is exactly view.Encode's output, the bytes
// a broadcast to the same request carries: no indentation, no trailing
// newline.
//
// The handler may serve requests concurrently. It panics on a view whose
// definition is wrong (see gormlive.View.Check) or that serves writes
// without Writable, Decode or ReadOnly: mistakes to catch at start-up.
func Handler[M any](view *gormlive.View[M], cfg Config) http.Handler {
	h, err := newHandler(view, cfg)
	if err != nil {
		panic(err)
	}
	return h
}

func newHandler[M any](view *gormlive.View[M], cfg Config) (*handler[M], error) {
	if view == nil {
		return nil, fmt.Errorf("rest: nil view")
	}
	if err := view.Check(); err != nil {
		return nil, fmt.Errorf("rest: %w", err)
	}
	if !view.ReadOnly && view.Decode == nil && len(view.Writable) == 0 {
		return nil, fmt.Errorf("rest: view %q serves writes but names no Writable fields and has no Decode: "+
			"list the fields clients may write, or set ReadOnly", view.Label)
	}
	m, err := gormmodel.Of[M](view.DB, gormmodel.Options{
		Options:  model.Options{Label: view.Label, LookupField: view.LookupField},
		Writable: view.Writable,
	})
	if err != nil {
		return nil, fmt.Errorf("rest: %w", err)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handler[M]{view: view, cfg: cfg, model: m, args: make(map[string]bool), params: make(map[string]bool)}
	for _, a := range view.Args {
		h.args[a] = true
	}
	for _, p := range view.QueryParams {
		h.params[p] = true
	}
	h.pageSize, h.maxPageSize = view.PageSize, view.MaxPageSize
	if h.pageSize <= 0 {
		h.pageSize = 100
	}
	if h.maxPageSize <= 0 {
		h.maxPageSize = max(1000, h.pageSize)
	}
	return h, nil
}

// handler serves one view; it holds no mutable state, so it serves
// requests concurrently.
type handler[M any] struct {
	view                  *gormlive.View[M]
	cfg                   Config
	model                 *gormmodel.Model
	args, params          map[string]bool
	pageSize, maxPageSize int
}

const (
	allowList     = "GET, HEAD, POST, OPTIONS"
	allowInstance = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
	allowRead     = "GET, HEAD, OPTIONS"
)

func (h *handler[M]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The escaped path keeps a lookup value containing "%2F" in one piece.
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			h.list(w, r)
		case r.Method == http.MethodPost && !h.view.ReadOnly:
			h.create(w, r)
		default:
			h.methods(w, r, h.allow(allowList))
		}
		return
	}
	lookup, err := url.PathUnescape(p)
	if err != nil || strings.Contains(p, "/") {
		drf.WriteDetail(w, http.StatusNotFound, "Not found.")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.retrieve(w, r, lookup)
		return
	}
	if h.view.ReadOnly {
		h.methods(w, r, allowRead)
		return
	}
	switch r.Method {
	case http.MethodPut:
		h.update(w, r, lookup, live.ActionUpdate)
	case http.MethodPatch:
		h.update(w, r, lookup, live.ActionPartialUpdate)
	case http.MethodDelete:
		h.destroy(w, r, lookup)
	default:
		h.methods(w, r, allowInstance)
	}
}

// allow returns the methods a path serves: only reads for a ReadOnly view.
func (h *handler[M]) allow(methods string) string {
	if h.view.ReadOnly {
		return allowRead
	}
	return methods
}

// methods answers OPTIONS, and 405 to any other method not served.
func (h *handler[M]) methods(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	drf.WriteDetail(w, http.StatusMethodNotAllowed, `Method "`+r.Method+`" not allowed.`)
}
