// Package rest serves a GORM model as a JSON CRUD API from the same
// gormlive.View that package live serves to real-time subscribers, so REST
// clients and subscribers always agree on who sees what and what it looks
// like.
//
//	mux.Handle("/api/tasks/", http.StripPrefix("/api/tasks", rest.Handler(tasks, rest.Config{Authenticate: auth})))
//
// Responses follow Django REST Framework: instances as the view serializes
// them, errors as {"detail": "..."} or, for invalid input, {"field":
// ["message"]}.
package rest

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/restlive/restlive/gormlive"
)

// Config configures a Handler. Its zero value serves every request as
// anonymous, with the defaults below.
type Config struct {
	// Authenticate returns the user who makes r and the user's ID, nil and
	// "" when r is anonymous. Give it the function live.Router's config
	// takes, so that a user is the same user on both sides. Defaults to
	// every request being anonymous.
	Authenticate func(r *http.Request) (user any, id string)
	// Args returns view keyword arguments that r carries besides the
	// lookup, such as a parent's ID in the mount point's path
	// (r.PathValue("list")). Defaults to none.
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
//	GET    /           list: the queryset as JSON array
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
// Query (HTTP is r; GroupBy and Value are empty), and goes through
// view.Permit (403, or 401 when anonymous), then view.Queryset (whose
// *live.Error, such as 400 for a bad filter, answers with its code). A list
// leaves out the instances PermitObject refuses for "list". An instance is
// looked up within the queryset and must pass PermitObject for "retrieve",
// or it answers 404 as if missing; then a write PermitObject refuses
// answers 403 (401 when anonymous). A create is checked by Permit and
// Validate only, as there is no instance before it.
//
// Bodies are JSON objects, Content-Type application/json (else 415, which
// also keeps cross-site HTML forms out), of at most Config.MaxBodyBytes
// (else 413), decoded by view.Decode and checked by view.Validate. Only the
// columns a write changed are updated (an update that changes nothing does
// not write), associations are never written, and the instance is read
// back through the queryset, so computed fields appear in the answer.
//
// An instance in a response body is exactly view.Encode's output, the bytes
// a broadcast to the same request carries: no indentation, no trailing
// newline. A list is those outputs joined by commas between brackets.
//
// The handler may serve requests concurrently. It panics if view has no
// DB, GORM cannot parse its model, or LookupField names no column: mistakes
// to catch at start-up.
func Handler[M any](view *gormlive.View[M], cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &handler[M]{view: view, cfg: cfg, model: parseModel(view)}
}

// handler serves one view; it holds no mutable state, so it serves
// requests concurrently.
type handler[M any] struct {
	view  *gormlive.View[M]
	cfg   Config
	model model
}

const (
	allowList     = "GET, HEAD, POST, OPTIONS"
	allowInstance = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
)

func (h *handler[M]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The escaped path keeps a lookup value containing "%2F" in one piece.
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.list(w, r)
		case http.MethodPost:
			h.create(w, r)
		default:
			h.methods(w, r, allowList)
		}
		return
	}
	lookup, err := url.PathUnescape(p)
	if err != nil || strings.Contains(p, "/") {
		writeDetail(w, http.StatusNotFound, "Not found.")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.retrieve(w, r, lookup)
	case http.MethodPut:
		h.update(w, r, lookup, "update")
	case http.MethodPatch:
		h.update(w, r, lookup, "partial_update")
	case http.MethodDelete:
		h.destroy(w, r, lookup)
	default:
		h.methods(w, r, allowInstance)
	}
}

// methods answers OPTIONS, and 405 to any other method not served.
func (h *handler[M]) methods(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeDetail(w, http.StatusMethodNotAllowed, `Method "`+r.Method+`" not allowed.`)
}
