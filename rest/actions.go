package rest

import (
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// request builds the live.Request views see for r.
func (h *handler[M]) request(r *http.Request, action string) *live.Request {
	req := &live.Request{HTTP: r, Action: action, Args: map[string]string{}, Query: r.URL.Query()}
	if h.cfg.Authenticate != nil {
		req.User, req.UserID = h.cfg.Authenticate(r)
	}
	if h.cfg.Args != nil {
		maps.Copy(req.Args, h.cfg.Args(r))
	}
	return req
}

// start builds the request for action, checks view.Permit and returns the
// queryset; on failure it has answered and returns a nil queryset.
func (h *handler[M]) start(w http.ResponseWriter, r *http.Request, action, lookup string) (*live.Request, *gorm.DB) {
	req := h.request(r, action)
	if lookup != "" {
		req.Args[h.model.lookupArg] = lookup
	}
	if h.view.Permit != nil {
		if err := h.view.Permit(r.Context(), req); err != nil {
			h.fail(w, req, err)
			return req, nil
		}
	}
	qs, err := h.view.Queryset(r.Context(), req)
	if err != nil {
		h.fail(w, req, err)
		return req, nil
	}
	return req, qs
}

// startOne is start for an action on one instance, which it finds; on
// failure it has answered and returns a nil instance.
func (h *handler[M]) startOne(w http.ResponseWriter, r *http.Request, action, lookup string) (*live.Request, *gorm.DB, *M) {
	req, qs := h.start(w, r, action, lookup)
	if qs == nil {
		return req, nil, nil
	}
	m, err := h.find(req, qs, lookup)
	if err != nil {
		h.fail(w, req, err)
		return req, nil, nil
	}
	return req, qs, m
}

// permitObject reports whether req may perform action on m.
func (h *handler[M]) permitObject(req *live.Request, action string, m *M) bool {
	if h.view.PermitObject == nil {
		return true
	}
	if req.Action != action {
		r := *req
		r.Action = action
		req = &r
	}
	return h.view.PermitObject(req, m)
}

// find returns the instance the lookup names within qs, if req may see it,
// and may perform req.Action on it.
func (h *handler[M]) find(req *live.Request, qs *gorm.DB, lookup string) (*M, error) {
	v, ok := h.model.lookupValue(lookup)
	if !ok {
		return nil, live.ErrNotFound
	}
	m := new(M)
	res := qs.Where(clause.Eq{Column: column(h.model.lookup.DBName), Value: v}).Limit(1).Find(m)
	if res.Error != nil {
		return nil, res.Error
	}
	// An instance the view hides from req is answered as missing, so that
	// a refusal never tells that it exists.
	if res.RowsAffected == 0 || !h.permitObject(req, "retrieve", m) {
		return nil, live.ErrNotFound
	}
	if req.Action != "retrieve" && !h.permitObject(req, req.Action, m) {
		return nil, live.ErrForbidden
	}
	return m, nil
}

// reread returns m as qs shows it after a write, with the fields the
// queryset computes; m itself when the write took it out of qs.
func (h *handler[M]) reread(req *live.Request, qs *gorm.DB, m *M) (*M, error) {
	fresh := new(M)
	res := h.model.wherePK(req.HTTP.Context(), qs, reflect.ValueOf(m).Elem()).Limit(1).Find(fresh)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return m, nil
	}
	return fresh, nil
}

// body reads the request body, a JSON document within the size limit.
func (h *handler[M]) body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// Requiring a JSON media type also keeps cross-site HTML forms, which
	// cannot send one, from writing with a user's cookie.
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, live.Errorf(http.StatusUnsupportedMediaType, "Unsupported media type %q in request: send application/json.", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, live.Errorf(http.StatusRequestEntityTooLarge, "Request body is larger than %d bytes.", tooLarge.Limit)
	}
	if err != nil {
		return nil, live.Errorf(http.StatusBadRequest, "Could not read the request body: %v", err)
	}
	return body, nil
}

// decode fills m from body with view.Decode, then view.Validate.
func (h *handler[M]) decode(req *live.Request, body []byte, m *M) error {
	var err error
	if h.view.Decode != nil {
		err = gormlive.JSONError(h.view.Decode(req, body, m))
	} else {
		err = gormlive.DecodeJSON(body, m)
		if req.Action == "create" {
			h.model.setPK(req.HTTP.Context(), reflect.ValueOf(m).Elem(), nil)
		}
	}
	if err == nil && h.view.Validate != nil {
		err = h.view.Validate(req.HTTP.Context(), req, m)
	}
	var fields gormlive.FieldErrors
	if errors.As(err, &fields) && len(fields) == 0 {
		return nil // an empty FieldErrors returned as an error reports nothing
	}
	return err
}

func (h *handler[M]) list(w http.ResponseWriter, r *http.Request) {
	req, qs := h.start(w, r, "list", "")
	if qs == nil {
		return
	}
	if _, ordered := qs.Statement.Clauses["ORDER BY"]; !ordered {
		// A stable order, so that a client paging or diffing a list sees
		// the same list twice.
		for _, f := range h.model.pks {
			qs = qs.Order(clause.OrderByColumn{Column: column(f.DBName)})
		}
	}
	var ms []M
	if err := qs.Find(&ms).Error; err != nil {
		h.fail(w, req, err)
		return
	}
	out := []byte{'['}
	for i := range ms {
		if !h.permitObject(req, "list", &ms[i]) {
			continue
		}
		b, err := h.view.Encode(req, &ms[i])
		if err != nil {
			h.fail(w, req, err)
			return
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	writeJSON(w, http.StatusOK, append(out, ']'))
}

func (h *handler[M]) retrieve(w http.ResponseWriter, r *http.Request, lookup string) {
	req, _, m := h.startOne(w, r, "retrieve", lookup)
	if m == nil {
		return
	}
	h.respond(w, req, http.StatusOK, m)
}

func (h *handler[M]) create(w http.ResponseWriter, r *http.Request) {
	req, qs := h.start(w, r, "create", "")
	if qs == nil {
		return
	}
	body, err := h.body(w, r)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	m := new(M)
	if err := h.decode(req, body, m); err != nil {
		h.fail(w, req, err)
		return
	}
	if err := h.view.DB.WithContext(r.Context()).Omit(clause.Associations).Create(m).Error; err != nil {
		h.fail(w, req, err)
		return
	}
	if m, err = h.reread(req, qs, m); err != nil {
		h.fail(w, req, err)
		return
	}
	h.respond(w, req, http.StatusCreated, m)
}

// update serves "update" and "partial_update": both change the fields the
// body names; Decode tells them apart when an update must name them all.
func (h *handler[M]) update(w http.ResponseWriter, r *http.Request, lookup, action string) {
	req, qs, m := h.startOne(w, r, action, lookup)
	if m == nil {
		return
	}
	body, err := h.body(w, r)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	ctx := r.Context()
	stored := reflect.ValueOf(m).Elem()
	pk := h.model.pkValues(ctx, stored)
	before := h.model.snapshot(ctx, stored)
	if err := h.decode(req, body, m); err != nil {
		h.fail(w, req, err)
		return
	}
	h.model.setPK(ctx, stored, pk)
	// Writing only what changed keeps concurrent partial updates of
	// different fields from undoing each other, never overwrites columns
	// the queryset did not load, and spares subscribers a broadcast for an
	// update that changes nothing.
	if cols := h.model.changed(ctx, before, stored); len(cols) > 0 {
		db := h.model.wherePK(ctx, h.view.DB.WithContext(ctx), stored)
		res := db.Model(m).Select(cols).Omit(clause.Associations).Updates(m)
		if res.Error != nil {
			h.fail(w, req, res.Error)
			return
		}
		if res.RowsAffected == 0 {
			h.fail(w, req, live.ErrNotFound) // deleted since it was read
			return
		}
	}
	if m, err = h.reread(req, qs, m); err != nil {
		h.fail(w, req, err)
		return
	}
	h.respond(w, req, http.StatusOK, m)
}

func (h *handler[M]) destroy(w http.ResponseWriter, r *http.Request, lookup string) {
	req, _, m := h.startOne(w, r, "destroy", lookup)
	if m == nil {
		return
	}
	ctx := r.Context()
	// The explicit condition names the row even when its key is a zero
	// value, which GORM's condition from m would leave out; passing m gives
	// the model's GORM hooks the instance.
	res := h.model.wherePK(ctx, h.view.DB.WithContext(ctx), reflect.ValueOf(m).Elem()).Delete(m)
	if res.Error != nil {
		h.fail(w, req, res.Error)
		return
	}
	if res.RowsAffected == 0 {
		h.fail(w, req, live.ErrNotFound) // deleted since it was read
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler[M]) respond(w http.ResponseWriter, req *live.Request, code int, m *M) {
	b, err := h.view.Encode(req, m)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	writeJSON(w, code, b)
}
