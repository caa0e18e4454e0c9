package rest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest/drf"
)

// request builds the live.Request views see for r: only the arguments and
// query parameters the view reads, as its subscriptions see them.
func (h *handler[M]) request(r *http.Request, action live.Action) (*live.Request, error) {
	req := &live.Request{HTTP: r, Action: action, Args: map[string]string{}, Query: map[string][]string{}}
	for k, v := range r.URL.Query() {
		if h.params[k] {
			req.Query[k] = v
		}
	}
	if h.cfg.Args != nil {
		for k, v := range h.cfg.Args(r) {
			if h.args[k] {
				req.Args[k] = v
			}
		}
	}
	if h.cfg.Authenticate != nil {
		id, err := h.cfg.Authenticate(r)
		if err != nil {
			return req, errAuthenticate{err}
		}
		req.User, req.UserID = id.User, id.ID
		if id.User == nil {
			req.UserID = ""
		}
	}
	return req, nil
}

// errAuthenticate is a failure of Config.Authenticate.
type errAuthenticate struct{ err error }

func (e errAuthenticate) Error() string { return "authenticate: " + e.err.Error() }
func (e errAuthenticate) Unwrap() error { return e.err }

// start builds the request for action and checks view.Permit; on failure
// it has answered and returns nil.
func (h *handler[M]) start(w http.ResponseWriter, r *http.Request, action live.Action, lookup string) *live.Request {
	req, err := h.request(r, action)
	if err != nil {
		h.fail(w, req, err)
		return nil
	}
	if lookup != "" {
		req.Args[h.model.LookupName] = lookup
	}
	if h.view.Permit != nil {
		if err := h.view.Permit(r.Context(), req); err != nil {
			h.fail(w, req, err)
			return nil
		}
	}
	return req
}

// find returns the instance the lookup names within the queryset of ctx
// (locked for the write under way, when action writes), if req may see it,
// and may perform req.Action on it.
func (h *handler[M]) find(ctx context.Context, req *live.Request, lookup string) (*M, error) {
	v, err := model.ParseValue(h.model.Lookup, lookup)
	if err != nil {
		return nil, live.ErrNotFound // a value the column cannot hold names nothing
	}
	qs, err := h.view.Queryset(ctx, req)
	if err != nil {
		return nil, err
	}
	qs = qs.Where(clause.Eq{Column: column(h.model.Lookup.Column), Value: v})
	if !req.Action.Read() {
		// SQLite ignores it: its transaction holds the database's write
		// lock from its start (_txlock=immediate) or fails and is retried.
		qs = qs.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	m := new(M)
	res := qs.Limit(1).Find(m)
	if res.Error != nil {
		return nil, res.Error
	}
	// An instance the view hides from req is answered as missing, so that
	// a refusal never tells that it exists.
	if res.RowsAffected == 0 {
		return nil, live.ErrNotFound
	}
	if err := h.permitObject(ctx, req, live.ActionRetrieve, m); err != nil {
		return nil, hidden(err)
	}
	if !req.Action.Read() {
		if err := h.permitObject(ctx, req, req.Action, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// hidden turns PermitObject's refusal to show an instance into 404.
func hidden(err error) error {
	var refusal *live.Error
	if errors.As(err, &refusal) {
		return live.ErrNotFound
	}
	return err
}

// permitObject runs view.PermitObject for action.
func (h *handler[M]) permitObject(ctx context.Context, req *live.Request, action live.Action, m *M) error {
	if h.view.PermitObject == nil {
		return nil
	}
	if req.Action != action {
		r := *req
		r.Action = action
		req = &r
	}
	return h.view.PermitObject(ctx, req, m)
}

// reread returns m as the queryset shows it after a write, with the fields
// it computes; m itself when the write took it out of the queryset.
func (h *handler[M]) reread(ctx context.Context, req *live.Request, m *M) (*M, error) {
	qs, err := h.view.Queryset(ctx, req)
	if err != nil {
		return nil, err
	}
	fresh := new(M)
	res := h.wherePK(ctx, qs, m).Limit(1).Find(fresh)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return m, nil
	}
	return fresh, nil
}

// wherePK narrows db to m's row. The explicit condition names the row even
// when its key is a zero value, which GORM's condition from m would leave
// out.
func (h *handler[M]) wherePK(ctx context.Context, db *gorm.DB, m *M) *gorm.DB {
	v, _ := h.model.PKField.ValueOf(ctx, reflect.ValueOf(m).Elem())
	return db.Where(clause.Eq{Column: column(h.model.PK.Column), Value: v})
}

// column refers to a column of the queried table, qualified so that a
// queryset with joins stays unambiguous.
func column(name string) clause.Column {
	return clause.Column{Table: clause.CurrentTable, Name: name}
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

// decode fills m from body with view.Decode, or with the body's Writable
// fields, then checks it with view.Validate.
func (h *handler[M]) decode(ctx context.Context, req *live.Request, body []byte, m *M) error {
	var err error
	if h.view.Decode != nil {
		err = gormlive.JSONError(h.view.Decode(ctx, req, body, m))
	} else {
		err = h.decodeWritable(ctx, body, m)
	}
	if err == nil && h.view.Validate != nil {
		err = h.view.Validate(ctx, req, m)
	}
	var fields gormlive.FieldErrors
	if errors.As(err, &fields) && len(fields) == 0 {
		return nil // an empty FieldErrors returned as an error reports nothing
	}
	return err
}

// decodeWritable sets the fields of m that the body names and the view
// lists as Writable; it ignores the others, as Django REST Framework
// ignores read-only fields.
func (h *handler[M]) decodeWritable(ctx context.Context, body []byte, m *M) error {
	var fields map[string]json.RawMessage
	if err := gormlive.DecodeJSON(body, &fields); err != nil {
		return err
	}
	errs := gormlive.FieldErrors{}
	rv := reflect.ValueOf(m).Elem()
	for name, raw := range fields {
		f := h.model.Writable[name]
		if f == nil {
			continue
		}
		v := reflect.New(f.FieldType)
		if err := gormlive.JSONError(json.Unmarshal(raw, v.Interface())); err != nil {
			var fe gormlive.FieldErrors
			if !errors.As(err, &fe) {
				return err
			}
			for _, msgs := range fe {
				errs[name] = append(errs[name], msgs...)
			}
			continue
		}
		if err := f.Set(ctx, rv, v.Elem().Interface()); err != nil {
			errs.Add(name, "Invalid value.")
		}
	}
	return errs.Err()
}

// list answers a page of the instances req sees.
func (h *handler[M]) list(w http.ResponseWriter, r *http.Request) {
	req := h.start(w, r, live.ActionList, "")
	if req == nil {
		return
	}
	p := h.page(r)
	qs, err := h.view.Queryset(r.Context(), req)
	if err == nil {
		if _, ordered := qs.Statement.Clauses["ORDER BY"]; !ordered {
			// A stable order, so that pages do not overlap.
			qs = qs.Order(clause.OrderByColumn{Column: column(h.model.PK.Column)})
		}
		err = h.paginate(r.Context(), req, qs, p)
	}
	if err != nil {
		h.fail(w, req, err)
		return
	}
	drf.WriteJSON(w, http.StatusOK, p.body(r))
}

func (h *handler[M]) retrieve(w http.ResponseWriter, r *http.Request, lookup string) {
	req := h.start(w, r, live.ActionRetrieve, lookup)
	if req == nil {
		return
	}
	m, err := h.find(r.Context(), req, lookup)
	var out []byte
	if err == nil {
		out, err = h.view.Encode(r.Context(), req, m)
	}
	if err != nil {
		h.fail(w, req, err)
		return
	}
	drf.WriteJSON(w, http.StatusOK, out)
}

func (h *handler[M]) create(w http.ResponseWriter, r *http.Request) {
	req := h.start(w, r, live.ActionCreate, "")
	if req == nil {
		return
	}
	body, err := h.body(w, r)
	var out []byte
	if err == nil {
		err = h.inTx(r.Context(), func(ctx context.Context, tx *gorm.DB) error {
			m := new(M)
			if err := h.decode(ctx, req, body, m); err != nil {
				return err
			}
			h.model.PKField.ReflectValueOf(ctx, reflect.ValueOf(m).Elem()).SetZero() // the database's to choose
			if err := tx.Omit(clause.Associations).Create(m).Error; err != nil {
				return err
			}
			return h.respond(ctx, req, m, &out)
		})
	}
	if err != nil {
		h.fail(w, req, err)
		return
	}
	drf.WriteJSON(w, http.StatusCreated, out)
}

// update serves "update" and "partial_update": both change the fields the
// body names; Decode tells them apart when an update must name them all.
func (h *handler[M]) update(w http.ResponseWriter, r *http.Request, lookup string, action live.Action) {
	req := h.start(w, r, action, lookup)
	if req == nil {
		return
	}
	body, err := h.body(w, r)
	var out []byte
	if err == nil {
		err = h.inTx(r.Context(), func(ctx context.Context, tx *gorm.DB) error {
			m, err := h.find(ctx, req, lookup)
			if err != nil {
				return err
			}
			stored := reflect.ValueOf(m).Elem()
			before := snapshot(ctx, h.model.Schema.Fields, stored)
			pk := deepCopy(h.model.PKField.ReflectValueOf(ctx, stored))
			if err := h.decode(ctx, req, body, m); err != nil {
				return err
			}
			h.model.PKField.ReflectValueOf(ctx, stored).Set(pk)
			// Writing only what changed keeps concurrent partial updates
			// of different fields from undoing each other, never
			// overwrites columns the queryset did not load, and spares
			// subscribers a broadcast for an update that changes nothing.
			if cols := changed(ctx, h.model.Schema.Fields, before, stored); len(cols) > 0 {
				res := h.wherePK(ctx, tx.Model(m), m).Select(cols).Omit(clause.Associations).Updates(m)
				if res.Error != nil {
					return res.Error
				}
			}
			return h.respond(ctx, req, m, &out)
		})
	}
	if err != nil {
		h.fail(w, req, err)
		return
	}
	drf.WriteJSON(w, http.StatusOK, out)
}

func (h *handler[M]) destroy(w http.ResponseWriter, r *http.Request, lookup string) {
	req := h.start(w, r, live.ActionDestroy, lookup)
	if req == nil {
		return
	}
	err := h.inTx(r.Context(), func(ctx context.Context, tx *gorm.DB) error {
		m, err := h.find(ctx, req, lookup)
		if err != nil {
			return err
		}
		// Passing m gives the model's GORM hooks the instance.
		return h.wherePK(ctx, tx, m).Delete(m).Error
	})
	if err != nil {
		h.fail(w, req, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// respond reads m back through the queryset and encodes it into out,
// inside the write's transaction: a failure rolls the write back.
func (h *handler[M]) respond(ctx context.Context, req *live.Request, m *M, out *[]byte) error {
	fresh, err := h.reread(ctx, req, m)
	if err != nil {
		return err
	}
	*out, err = h.view.Encode(ctx, req, fresh)
	return err
}
