package todoapp

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest/drf"
)

// The SQL mode's REST handlers: what a team without an ORM writes. Every
// read goes through the model's sqlview.View (Request, Allow, Page, Get,
// Find, Encode), so a GET answers with the rows, permissions and bytes a
// subscriber of the same view gets; writes are plain SQL statements. The
// answers are those of package rest, which the GORM mode serves, as
// Django REST Framework gives them: pages and error details are written
// by rest/drf, as rest writes them.

// A resource is what the handlers need of a model: its view's reads,
// and how a request body becomes a write.
type resource struct {
	label   string
	table   string
	request func(r *http.Request, action live.Action, id live.Identity) *live.Request
	allow   func(ctx context.Context, req *live.Request) error
	page    func(ctx context.Context, req *live.Request, offset, limit int) ([][]byte, int, error)
	get     func(ctx context.Context, req *live.Request, lookup string) (any, error)
	encode  func(ctx context.Context, req *live.Request, row any) ([]byte, error)
	reread  func(ctx context.Context, req *live.Request, id int64) (any, error)
	// decode reads a body into the columns to write: onto stored, the
	// row as it is, for an update; validated.
	decode func(ctx context.Context, req *live.Request, body []byte, stored any) (write, error)
	// columns returns the values of the write's columns in a stored row,
	// and id its primary key.
	columns func(row any) []any
	id      func(row any) int64
}

// A write is the columns a request sets, and their values.
type write struct {
	table   string
	columns []string
	values  []any
}

const (
	pageSize, maxPageSize = 100, 1000
	maxBody               = 1 << 20
	notAuthenticated      = "Authentication credentials were not provided."
	allowList             = "GET, HEAD, POST, OPTIONS"
	allowInstance         = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
)

// handler serves res at / (list, create) and /{id}/ (retrieve, update,
// destroy), with or without the trailing slash.
func (api *sqlAPI) handler(res resource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimSuffix(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
		if !isRead(r.Method) {
			defer api.reader.Nudge() // the write's broadcasts go out at once
		}
		if p == "" {
			switch r.Method {
			case http.MethodGet, http.MethodHead:
				api.list(w, r, res)
			case http.MethodPost:
				api.create(w, r, res)
			default:
				methods(w, r, allowList)
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
			api.retrieve(w, r, res, lookup)
		case http.MethodPut:
			api.update(w, r, res, lookup, live.ActionUpdate)
		case http.MethodPatch:
			api.update(w, r, res, lookup, live.ActionPartialUpdate)
		case http.MethodDelete:
			api.destroy(w, r, res, lookup)
		default:
			methods(w, r, allowInstance)
		}
	})
}

func isRead(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// methods answers OPTIONS, and 405 to any other method not served.
func methods(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	drf.WriteDetail(w, http.StatusMethodNotAllowed, `Method "`+r.Method+`" not allowed.`)
}

// start authenticates r, builds the view's request and checks its
// Permit; on failure it has answered and returns nil.
func (api *sqlAPI) start(w http.ResponseWriter, r *http.Request, res resource, action live.Action, lookup string) *live.Request {
	id, err := api.authenticate(r)
	if err != nil {
		var refusal *live.Error
		if errors.As(err, &refusal) && (refusal.Code == 401 || refusal.Code == 403) {
			w.Header().Set("WWW-Authenticate", "Token")
			drf.WriteDetail(w, http.StatusUnauthorized, refusal.Message)
		} else {
			api.fail(w, &live.Request{HTTP: r, Action: action}, res, err)
		}
		return nil
	}
	req := res.request(r, action, id)
	if lookup != "" {
		req.Args[live.PK] = lookup
	}
	if err := res.allow(r.Context(), req); err != nil {
		api.fail(w, req, res, err)
		return nil
	}
	return req
}

func (api *sqlAPI) list(w http.ResponseWriter, r *http.Request, res resource) {
	req := api.start(w, r, res, live.ActionList, "")
	if req == nil {
		return
	}
	limit, offset := drf.Limits(r, pageSize, maxPageSize)
	instances, count, err := res.page(r.Context(), req, offset, limit)
	if err != nil {
		api.fail(w, req, res, err)
		return
	}
	drf.WriteJSON(w, http.StatusOK, drf.Page(r, int64(count), limit, offset, bytes.Join(instances, []byte(","))))
}

func (api *sqlAPI) retrieve(w http.ResponseWriter, r *http.Request, res resource, lookup string) {
	req := api.start(w, r, res, live.ActionRetrieve, lookup)
	if req == nil {
		return
	}
	row, err := res.get(r.Context(), req, lookup)
	var out []byte
	if err == nil {
		out, err = res.encode(r.Context(), req, row)
	}
	if err != nil {
		api.fail(w, req, res, err)
		return
	}
	drf.WriteJSON(w, http.StatusOK, out)
}

func (api *sqlAPI) create(w http.ResponseWriter, r *http.Request, res resource) {
	req := api.start(w, r, res, live.ActionCreate, "")
	if req == nil {
		return
	}
	body, err := readBody(w, r)
	var out []byte
	if err == nil {
		err = api.inTx(r.Context(), func(ctx context.Context, tx *sql.Tx) error {
			wr, err := res.decode(ctx, req, body, nil)
			if err != nil {
				return err
			}
			var id int64
			if err := tx.QueryRowContext(ctx, insert(wr), wr.values...).Scan(&id); err != nil {
				return err
			}
			return api.respond(ctx, req, res, id, &out)
		})
	}
	if err != nil {
		api.fail(w, req, res, err)
		return
	}
	drf.WriteJSON(w, http.StatusCreated, out)
}

// update serves "update" and "partial_update". Only the columns whose
// values change are written, and an update that changes nothing does not
// write, as package rest does: subscribers hear of no change that was
// not made.
func (api *sqlAPI) update(w http.ResponseWriter, r *http.Request, res resource, lookup string, action live.Action) {
	req := api.start(w, r, res, action, lookup)
	if req == nil {
		return
	}
	body, err := readBody(w, r)
	var out []byte
	if err == nil {
		err = api.inTx(r.Context(), func(ctx context.Context, tx *sql.Tx) error {
			stored, err := res.get(ctx, req, lookup) // locked, and checked for action
			if err != nil {
				return err
			}
			wr, err := res.decode(ctx, req, body, stored)
			if err != nil {
				return err
			}
			id := res.id(stored)
			if stmt, args := updateChanged(wr, res.columns(stored), id); stmt != "" {
				if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
					return err
				}
			}
			return api.respond(ctx, req, res, id, &out)
		})
	}
	if err != nil {
		api.fail(w, req, res, err)
		return
	}
	drf.WriteJSON(w, http.StatusOK, out)
}

func (api *sqlAPI) destroy(w http.ResponseWriter, r *http.Request, res resource, lookup string) {
	req := api.start(w, r, res, live.ActionDestroy, lookup)
	if req == nil {
		return
	}
	err := api.inTx(r.Context(), func(ctx context.Context, tx *sql.Tx) error {
		stored, err := res.get(ctx, req, lookup)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM "+res.table+" WHERE id = $1", res.id(stored))
		return err
	})
	if err != nil {
		api.fail(w, req, res, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// respond reads the written row back through the view, with what its
// queryset computes, and encodes it, inside the write's transaction.
func (api *sqlAPI) respond(ctx context.Context, req *live.Request, res resource, id int64, out *[]byte) error {
	row, err := res.reread(ctx, req, id)
	if err != nil {
		return err
	}
	if row == nil {
		// The app's rules never take a row out of its writer's sight.
		return errors.New("the written row left the writer's queryset")
	}
	*out, err = res.encode(ctx, req, row)
	return err
}

// insert returns the INSERT of wr, which returns the new row's id.
func insert(wr write) string {
	params := make([]string, len(wr.columns))
	for i := range params {
		params[i] = "$" + strconv.Itoa(i+1)
	}
	return "INSERT INTO " + wr.table + " (" + strings.Join(wr.columns, ", ") + ") VALUES (" + strings.Join(params, ", ") + ") RETURNING id"
}

// updateChanged returns the UPDATE of the columns of wr whose values
// differ from stored, those of row id; "" when none does.
func updateChanged(wr write, stored []any, id int64) (string, []any) {
	var sets []string
	var args []any
	for i, col := range wr.columns {
		if wr.values[i] != stored[i] {
			args = append(args, wr.values[i])
			sets = append(sets, col+" = $"+strconv.Itoa(len(args)))
		}
	}
	if len(sets) == 0 {
		return "", nil
	}
	args = append(args, id)
	return "UPDATE " + wr.table + " SET " + strings.Join(sets, ", ") + " WHERE id = $" + strconv.Itoa(len(args)), args
}

// readBody reads a JSON request body of at most maxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// A JSON media type also keeps cross-site HTML forms out.
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, live.Errorf(http.StatusUnsupportedMediaType, "Unsupported media type %q in request: send application/json.", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, live.Errorf(http.StatusRequestEntityTooLarge, "Request body is larger than %d bytes.", tooLarge.Limit)
	}
	if err != nil {
		return nil, live.Errorf(http.StatusBadRequest, "Could not read the request body: %v", err)
	}
	return body, nil
}

// fail answers err: field errors with 400, a *live.Error with its code
// and message (a 403 to an anonymous request is 401: logging in may
// change the answer), anything else with 500, logged and not shown.
func (api *sqlAPI) fail(w http.ResponseWriter, req *live.Request, res resource, err error) {
	var fields gormlive.FieldErrors
	var refusal *live.Error
	switch {
	case errors.As(err, &fields):
		body, _ := json.Marshal(fields)
		drf.WriteJSON(w, http.StatusBadRequest, body)
		return
	case errors.As(err, &refusal) && refusal.Code >= 400 && refusal.Code <= 599:
		if refusal.Code == http.StatusForbidden && req.Anonymous() {
			w.Header().Set("WWW-Authenticate", "Token")
			drf.WriteDetail(w, http.StatusUnauthorized, notAuthenticated)
			return
		}
		drf.WriteDetail(w, refusal.Code, refusal.Message)
		return
	}
	ctx := req.HTTP.Context()
	if ctx.Err() != nil {
		return // the client has gone: nobody to answer
	}
	api.app.log.ErrorContext(ctx, "todolist: request failed", "model", res.label, "action", req.Action, "err", err)
	drf.WriteDetail(w, http.StatusInternalServerError, "A server error occurred.")
}
