package gormlive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/internal/model/gormmodel"
	"github.com/restlive/restlive/live"
)

// The real-time side of View: what a live.Router and its hub call.

var _ live.View = (*View[struct{ ID int }])(nil)

// Spec describes the view to a live.Router.
func (v *View[M]) Spec() live.Spec {
	return live.Spec{
		Model: v.Label, Lookup: v.lookup(), GroupBy: v.GroupFields, ListAll: v.ListAll,
		Args: v.Args, QueryParams: v.QueryParams, Dependencies: v.Dependencies,
	}
}

// lookup returns LookupField, or live.PK when it is empty.
func (v *View[M]) lookup() string {
	if v.LookupField == "" {
		return live.PK
	}
	return v.LookupField
}

// Parse returns a client's value of the field name (live.PK, LookupField
// or one of GroupFields) as the column's type holds it (see
// live.View.Parse): "01" of an integer column is 1.
func (v *View[M]) Parse(name, value string) (live.Value, error) {
	m, err := v.model()
	if err != nil {
		return live.Value{}, err
	}
	return m.Parse(name, value)
}

// Check reports what is wrong with the view's definition: a Label not of
// the form "app.Model", a nil DB, a model GORM cannot parse or without a
// single primary key, or a LookupField, GroupFields, Dependencies or
// Writable entry that names no suitable field of M. A live.Router calls it
// when the view is registered, and package rest when it mounts it, so a
// mistake stops the program at start rather than failing requests.
func (v *View[M]) Check() error {
	if !validLabel(v.Label) {
		return fmt.Errorf("gormlive: view %q: the label must have the form app.Model", v.Label)
	}
	for _, d := range v.Dependencies {
		if !validLabel(d.Model) {
			return fmt.Errorf("gormlive: view %q: dependency model %q must have the form app.Model", v.Label, d.Model)
		}
	}
	_, err := v.model()
	return err
}

// model resolves the view's field names against M's GORM schema, once
// per view definition: subscriptions and requests share the result (a
// scope keeps it), and a View needs no hidden field, which would forbid
// copying it.
func (v *View[M]) model() (*gormmodel.Model, error) {
	opts := gormmodel.Options{
		Options:  model.Options{Label: v.Label, LookupField: v.LookupField, GroupFields: v.GroupFields},
		Writable: v.Writable,
	}
	for _, d := range v.Dependencies {
		opts.DepFields = append(opts.DepFields, d.Field)
	}
	if v.DB == nil {
		return nil, fmt.Errorf("gormlive: view %q: DB is nil", v.Label)
	}
	key := modelKey{typ: reflect.TypeFor[M](), config: v.DB.Config, opts: fmt.Sprintf("%q", opts)}
	if m, ok := models.Load(key); ok {
		return m.(*gormmodel.Model), nil
	}
	m, err := gormmodel.Of[M](v.DB, opts)
	if err != nil {
		return nil, fmt.Errorf("gormlive: %w", err)
	}
	models.Store(key, m)
	return m, nil
}

// models holds model's results by modelKey.
var models sync.Map

// modelKey names what a view's model depends on: M, the database's
// configuration (its naming strategy and dialect) and the view's fields.
type modelKey struct {
	typ    reflect.Type
	config *gorm.Config
	opts   string
}

// validLabel reports whether label is "app.Model": two identifiers joined
// by one dot, as the protocol's "model" names views.
func validLabel(label string) bool {
	app, model, ok := strings.Cut(label, ".")
	return ok && identifier(app) && identifier(model)
}

func identifier(s string) bool {
	for i, r := range s {
		if r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && !(i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// Subscribe checks req with Permit and returns the scope of the instance
// (req.GroupBy is live.PK and req.Value the lookup field's value), of the
// group (req.GroupBy one of GroupFields), or of every instance Query lets
// through (req.GroupBy empty) it subscribes to. It reads no row; it calls
// Query once so that a bad filter or argument is refused now with Query's
// error rather than on the first change. Errors from Permit and Query are
// returned as they are.
func (v *View[M]) Subscribe(ctx context.Context, req *live.Request) (live.Scope, error) {
	m, err := v.model()
	if err != nil {
		return nil, err
	}
	if v.Permit != nil {
		if err := v.Permit(ctx, req); err != nil {
			return nil, err
		}
	}
	var field *model.Field
	var value any
	switch {
	case req.GroupBy == "" && !v.ListAll:
		return nil, live.Errorf(400, "%s can only be subscribed to by group", v.Label)
	case req.GroupBy != "" && req.GroupBy != live.PK && !slices.Contains(v.GroupFields, req.GroupBy):
		return nil, live.Errorf(400, "%q is not a field %s can be grouped by", req.GroupBy, v.Label)
	}
	if req.GroupBy != "" {
		name := req.GroupBy
		if name == live.PK {
			name = m.LookupName
		}
		if field, err = m.Field(name); err != nil {
			return nil, live.Errorf(400, "%s: %v", v.Label, err)
		}
		if value, err = model.ParseValue(field, req.Value); err != nil {
			return nil, live.Errorf(400, "%s: %q is not a valid %s", field.Column, req.Value, field.Type)
		}
	}
	if v.Query != nil {
		if _, err := v.Queryset(ctx, req); err != nil {
			return nil, err
		}
	}
	s := &scope[M]{view: v, meta: m, req: req, field: field, value: value}
	if field == m.PK {
		// Fetch skips the query when none of the pks is this one.
		s.pkOnly = true
		s.canonPK, _ = live.Canonical(value)
	}
	if v.Vary != nil {
		s.key = v.Vary(req)
	} else {
		s.key = req.UserID
	}
	if v.QueryVary != nil {
		return &sharedScope[M]{scope: s, queryKey: v.QueryVary(req)}, nil
	}
	return s, nil
}

// sharedScope is a scope whose query other requests' scopes share (see
// View.QueryVary and live.SharedScope).
type sharedScope[M any] struct {
	*scope[M]
	queryKey string
}

func (s *sharedScope[M]) QueryKey() string { return s.queryKey }

// Rows runs the scope's query for pks, unserialized: one query, like Fetch.
func (s *sharedScope[M]) Rows(ctx context.Context, pks []string) (any, error) {
	return s.rows(ctx, pks)
}

// Render applies the scope's request's PermitObject and Serialize to rows
// from the Rows of a scope with the same QueryKey.
func (s *sharedScope[M]) Render(ctx context.Context, rows any) ([]live.Instance, error) {
	r, ok := rows.([]M)
	if !ok {
		return nil, fmt.Errorf("gormlive: %s: Render of %T, want the []%T of Rows", s.view.Label, rows, *new(M))
	}
	return s.render(ctx, r)
}

// scope is the live.Scope of one View: Query narrowed by one field's value
// (or not narrowed), as its first subscriber's request sees it. Its methods may be called
// concurrently; they only read it.
type scope[M any] struct {
	view    *View[M]
	meta    *gormmodel.Model
	req     *live.Request
	key     string
	field   *model.Field // the column the scope is narrowed by, if any
	value   any          // its value, of the column's Go type
	pkOnly  bool         // field is the primary key
	canonPK string       // value in canonical form, when pkOnly
}

func (s *scope[M]) Key() string { return s.key }

// Members returns, serialized, the instances Query, the scope's field and
// PermitObject let through now: one query.
func (s *scope[M]) Members(ctx context.Context) ([]live.Instance, error) {
	rows, err := s.find(ctx, nil)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, rows)
}

// Fetch returns, serialized, the instances among pks that Query, the
// scope's field and PermitObject let through now. It runs one query for
// all of pks (on databases other than PostgreSQL, one per maxFetchVars
// pks); a pk that is not of the primary key's type matches nothing.
func (s *scope[M]) Fetch(ctx context.Context, pks []string) ([]live.Instance, error) {
	rows, err := s.rows(ctx, pks)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, rows)
}

// rows returns the rows among pks that Query and the scope's field let
// through now.
func (s *scope[M]) rows(ctx context.Context, pks []string) ([]M, error) {
	if s.pkOnly {
		// A scope of one instance cannot hold any other: spare the query.
		found := false
		for _, pk := range pks {
			if pk == s.canonPK {
				found = true
				break
			}
		}
		if !found {
			return nil, nil
		}
		pks = []string{s.canonPK}
	}
	var rows []M
	for len(pks) > 0 {
		chunk := pks
		if !s.meta.Postgres && len(chunk) > maxFetchVars {
			chunk = chunk[:maxFetchVars]
		}
		pks = pks[len(chunk):]
		cond, ok := s.pkCondition(chunk)
		if !ok {
			continue
		}
		got, err := s.find(ctx, cond)
		if err != nil {
			return nil, err
		}
		if rows == nil {
			rows = got
		} else {
			rows = append(rows, got...)
		}
	}
	return rows, nil
}

// render returns, serialized, the rows PermitObject lets the scope's
// request see.
func (s *scope[M]) render(ctx context.Context, rows []M) ([]live.Instance, error) {
	out := make([]live.Instance, 0, len(rows))
	for i := range rows {
		if visible, err := s.view.visible(ctx, s.req, &rows[i]); err != nil {
			return nil, err
		} else if !visible {
			continue
		}
		in, err := s.identify(ctx, &rows[i])
		if err != nil {
			return nil, err
		}
		if in.Data, err = s.view.Encode(ctx, s.req, &rows[i]); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// visible reports whether PermitObject lets req see m: a refusal (an
// *live.Error) hides it, any other error is a failure.
func (v *View[M]) visible(ctx context.Context, req *live.Request, m *M) (bool, error) {
	if v.PermitObject == nil {
		return true, nil
	}
	err := v.PermitObject(ctx, req, m)
	var refusal *live.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &refusal):
		return false, nil
	}
	return false, fmt.Errorf("gormlive: %s: PermitObject: %w", v.Label, err)
}

// maxFetchVars bounds the pks one IN list carries: SQLite (before 3.32)
// and SQL Server refuse statements with more than 999 and 2100 parameters.
// PostgreSQL takes all of them as one array parameter instead.
const maxFetchVars = 900

// find runs Query narrowed by the scope's field and cond.
func (s *scope[M]) find(ctx context.Context, cond clause.Expression) ([]M, error) {
	db, err := s.view.Queryset(ctx, s.req)
	if err != nil {
		return nil, err
	}
	// Qualified with the model's table: Query may join tables with columns
	// of the same names. No Select: Query may have selected computed fields.
	if s.field != nil {
		db = db.Where(clause.Eq{Column: clause.Column{Table: clause.CurrentTable, Name: s.field.Column}, Value: s.value})
	}
	if cond != nil {
		db = db.Where(cond)
	}
	var rows []M
	if err := db.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("gormlive: %s: query: %w", s.view.Label, err)
	}
	return rows, nil
}

// pkCondition returns "pk IN pks" for the pks of the primary key's type;
// false when there are none.
func (s *scope[M]) pkCondition(pks []string) (clause.Expression, bool) {
	pk, gpk := s.meta.PK, s.meta.PKField
	column := clause.Column{Table: clause.CurrentTable, Name: pk.Column}
	if s.meta.Postgres {
		// One array parameter whatever the number of pks: the statement's
		// text stays the same, so its prepared form is cached and reused.
		switch {
		case gpk.GORMDataType == schema.Int || gpk.GORMDataType == schema.Uint:
			vals := make([]int64, 0, len(pks))
			for _, p := range pks {
				if x, err := model.ParseValue(pk, p); err == nil {
					switch x := x.(type) {
					case int64:
						vals = append(vals, x)
					case uint64:
						if x <= math.MaxInt64 {
							vals = append(vals, int64(x))
						}
					}
				}
			}
			return anyOf{column, vals}, len(vals) > 0
		case gpk.GORMDataType == schema.String && gpk.DataType == schema.String:
			return anyOf{column, pks}, len(pks) > 0
		}
	}
	vals := make([]any, 0, len(pks))
	for _, p := range pks {
		if x, err := model.ParseValue(pk, p); err == nil {
			vals = append(vals, x)
		}
	}
	return clause.IN{Column: column, Values: vals}, len(vals) > 0
}

// anyOf is "column = ANY(array)" with the array bound as one parameter.
// GORM expands a slice in a clause into a list of parameters, so the
// parameter is added to the statement here.
type anyOf struct {
	column clause.Column
	array  any // []int64 or []string
}

func (a anyOf) Build(b clause.Builder) {
	b.WriteQuoted(a.column)
	b.WriteString(" = ANY(")
	if stmt, ok := b.(*gorm.Statement); ok {
		stmt.Vars = append(stmt.Vars, a.array)
		stmt.DB.Dialector.BindVarTo(b, stmt, a.array)
	} else {
		b.AddVar(b, a.array)
	}
	b.WriteByte(')')
}

// identify returns m's PK and ID.
func (s *scope[M]) identify(ctx context.Context, m *M) (live.Instance, error) {
	pk, id, err := s.meta.Identify(ctx, reflect.ValueOf(m))
	if err != nil {
		return live.Instance{}, fmt.Errorf("gormlive: %s: %w", s.view.Label, err)
	}
	return live.Instance{PK: pk, ID: id}, nil
}
