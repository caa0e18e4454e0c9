package gormlive

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/restlive/restlive/live"
)

// The real-time side of View: what a live.Router and its hub call.

var _ live.View = (*View[struct{ ID int }])(nil)

// Model returns Label.
func (v *View[M]) Model() string { return v.Label }

// GroupBy returns GroupFields.
func (v *View[M]) GroupBy() []string { return v.GroupFields }

// DependsOn returns v.Dependencies (see live.Dependent).
func (v *View[M]) DependsOn() []live.Dependency { return v.Dependencies }

// Lookup returns LookupField, or live.PK when it is empty.
func (v *View[M]) Lookup() string {
	if v.LookupField == "" {
		return live.PK
	}
	return v.LookupField
}

// Check reports what is wrong with the view's definition: a Label not of
// the form "app.Model", a nil DB, a model GORM cannot parse or without a
// single primary key, or a LookupField or GroupFields entry that is not a
// column of M. A live.Router calls it when the view is registered, so a
// mistake stops the program at start rather than failing subscriptions.
func (v *View[M]) Check() error {
	_, err := v.meta()
	return err
}

// viewMeta is what a view derives from its definition and M's GORM schema.
// Subscribe builds it again each time: the schema itself is parsed once and
// cached by GORM, so this costs a few map look-ups, and it spares View a
// hidden field that would forbid copying it.
type viewMeta struct {
	schema *schema.Schema
	pk     *schema.Field // the single primary key
	lookup *schema.Field // LookupField's column, or pk
	// lookupKey is LookupField as a JSON string, the key of the lookup
	// field in an instance's ID.
	lookupKey []byte
	// postgres tells that the database takes an array parameter for
	// "pk = ANY(?)" (see anyOf).
	postgres bool
}

func (v *View[M]) meta() (*viewMeta, error) {
	fail := func(format string, args ...any) (*viewMeta, error) {
		return nil, fmt.Errorf("gormlive: view %q: "+format, append([]any{v.Label}, args...)...)
	}
	if !validLabel(v.Label) {
		return fail("the label must have the form app.Model")
	}
	if v.DB == nil {
		return fail("DB is nil")
	}
	stmt := &gorm.Statement{DB: v.DB}
	if err := stmt.Parse(new(M)); err != nil {
		return fail("parse model: %w", err)
	}
	s := stmt.Schema
	m := &viewMeta{schema: s, pk: s.PrioritizedPrimaryField, postgres: v.DB.Dialector.Name() == "postgres"}
	if len(s.PrimaryFields) != 1 || m.pk == nil {
		return fail("%s must have exactly one primary key field, it has %d", s.Name, len(s.PrimaryFields))
	}
	column := func(role, name string) (*schema.Field, error) {
		f := s.FieldsByDBName[name]
		if f == nil {
			_, err := fail("%s %q is not a column of %s", role, name, s.Name)
			return nil, err
		}
		if !f.Readable {
			_, err := fail("%s %q of %s is not readable", role, name, s.Name)
			return nil, err
		}
		return f, nil
	}
	m.lookup = m.pk
	if v.LookupField != "" {
		f, err := column("lookup field", v.LookupField)
		if err != nil {
			return nil, err
		}
		m.lookup = f
		m.lookupKey, _ = json.Marshal(v.LookupField)
	}
	for _, name := range v.GroupFields {
		if name == live.PK {
			return fail("group field %q means the instance itself and cannot be listed", name)
		}
		if _, err := column("group field", name); err != nil {
			return nil, err
		}
	}
	for _, d := range v.Dependencies {
		if !validLabel(d.Model) {
			return fail("dependency model %q must have the form app.Model", d.Model)
		}
		if _, err := column("dependency field", d.Field); err != nil {
			return nil, err
		}
	}
	return m, nil
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
// through (req.GroupBy empty) it subscribes to. It reads no row;
// it calls Query once so that a bad filter or argument is refused now with
// Query's error rather than on the first change. A value that is not of
// the field's type is refused with 400. Errors from Permit and Query are
// returned as they are.
func (v *View[M]) Subscribe(ctx context.Context, req *live.Request) (live.Scope, error) {
	m, err := v.meta()
	if err != nil {
		return nil, err
	}
	if v.Permit != nil {
		if err := v.Permit(ctx, req); err != nil {
			return nil, err
		}
	}
	var field *schema.Field
	switch req.GroupBy {
	case live.PK:
		field = m.lookup
	case "":
		// The whole queryset: narrowed by nothing but Query.
	default:
		for _, name := range v.GroupFields {
			if name == req.GroupBy {
				field = m.schema.FieldsByDBName[name]
				break
			}
		}
		if field == nil {
			return nil, live.Errorf(400, "%q is not a field %s can be grouped by", req.GroupBy, v.Label)
		}
	}
	var value any
	if field != nil {
		var err error
		if value, err = parseValue(field, req.Value); err != nil {
			return nil, live.Errorf(400, "%s: %q is not a valid %s", field.DBName, req.Value, field.DataType)
		}
	}
	if v.Query != nil {
		if _, err := v.Queryset(ctx, req); err != nil {
			return nil, err
		}
	}
	s := &scope[M]{view: v, meta: m, req: req, field: field, value: value}
	if field == m.pk {
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
func (s *sharedScope[M]) Render(rows any) ([]live.Instance, error) {
	r, ok := rows.([]M)
	if !ok {
		return nil, fmt.Errorf("gormlive: %s: Render of %T, want the []%T of Rows", s.view.Label, rows, *new(M))
	}
	// No I/O happens here: GORM's field readers take a context but use
	// none.
	return s.render(context.Background(), r)
}

// scope is the live.Scope of one View: Query narrowed by one field's value
// (or not narrowed), as its first subscriber's request sees it. Its methods may be called
// concurrently; they only read it.
type scope[M any] struct {
	view    *View[M]
	meta    *viewMeta
	req     *live.Request
	key     string
	field   *schema.Field // the column the scope is narrowed by, if any
	value   any           // its value, of the column's Go type
	pkOnly  bool          // field is the primary key
	canonPK string        // value in canonical form, when pkOnly
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
		if !s.meta.postgres && len(chunk) > maxFetchVars {
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
		if s.view.PermitObject != nil && !s.view.PermitObject(s.req, &rows[i]) {
			continue
		}
		in, err := s.identify(ctx, &rows[i])
		if err != nil {
			return nil, err
		}
		if in.Data, err = s.view.Encode(s.req, &rows[i]); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
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
		db = db.Where(clause.Eq{Column: clause.Column{Table: clause.CurrentTable, Name: s.field.DBName}, Value: s.value})
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
	pk := s.meta.pk
	column := clause.Column{Table: clause.CurrentTable, Name: pk.DBName}
	if s.meta.postgres {
		// One array parameter whatever the number of pks: the statement's
		// text stays the same, so its prepared form is cached and reused.
		switch {
		case pk.GORMDataType == schema.Int || pk.GORMDataType == schema.Uint:
			vals := make([]int64, 0, len(pks))
			for _, p := range pks {
				if x, err := parseValue(pk, p); err == nil {
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
		case pk.GORMDataType == schema.String && pk.DataType == schema.String:
			return anyOf{column, pks}, len(pks) > 0
		}
	}
	vals := make([]any, 0, len(pks))
	for _, p := range pks {
		if x, err := parseValue(pk, p); err == nil {
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
	rv := reflect.ValueOf(m)
	pk, pkJSON, err := fieldValue(ctx, s.meta.pk, rv)
	if err != nil {
		return live.Instance{}, fmt.Errorf("gormlive: %s: primary key: %w", s.view.Label, err)
	}
	id := make([]byte, 0, 8+len(pkJSON)+len(s.meta.lookupKey)+16)
	id = append(id, `{"id":`...)
	id = append(id, pkJSON...)
	if s.meta.lookup != s.meta.pk {
		_, lookupJSON, err := fieldValue(ctx, s.meta.lookup, rv)
		if err != nil {
			return live.Instance{}, fmt.Errorf("gormlive: %s: %s: %w", s.view.Label, s.meta.lookup.DBName, err)
		}
		id = append(id, ',')
		id = append(id, s.meta.lookupKey...)
		id = append(id, ':')
		id = append(id, lookupJSON...)
	}
	id = append(id, '}')
	return live.Instance{PK: pk, ID: id}, nil
}

// fieldValue returns f's value in m (a pointer to the struct) in canonical
// form and as JSON: a number for numeric columns, a string for text.
func fieldValue(ctx context.Context, f *schema.Field, m reflect.Value) (string, []byte, error) {
	fv := f.ReflectValueOf(ctx, m)
	for fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return "", []byte("null"), nil
		}
		fv = fv.Elem()
	}
	switch fv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s := strconv.FormatInt(fv.Int(), 10)
		return s, []byte(s), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s := strconv.FormatUint(fv.Uint(), 10)
		return s, []byte(s), nil
	case reflect.String:
		j, err := json.Marshal(fv.String())
		return fv.String(), j, err
	}
	// Valuers (sql.NullInt64, UUIDs) and floats: by their database value.
	x := fv.Interface()
	if valuer, ok := x.(driver.Valuer); ok {
		var err error
		if x, err = valuer.Value(); err != nil {
			return "", nil, err
		}
	}
	s, err := live.Canonical(x)
	if err != nil {
		return "", nil, err
	}
	j, err := json.Marshal(x)
	return s, j, err
}

// parseValue converts a canonical value to the Go type of f's column, so
// that drivers bind it as that type (PostgreSQL compares an integer column
// to an integer parameter, not to text).
func parseValue(f *schema.Field, s string) (any, error) {
	bits := 64
	switch f.IndirectFieldType.Kind() {
	case reflect.Int8, reflect.Uint8:
		bits = 8
	case reflect.Int16, reflect.Uint16:
		bits = 16
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		bits = 32
	}
	switch f.GORMDataType {
	case schema.Int:
		return strconv.ParseInt(s, 10, bits)
	case schema.Uint:
		return strconv.ParseUint(s, 10, bits)
	case schema.Float:
		x, err := strconv.ParseFloat(s, 64)
		if err == nil && (math.IsNaN(x) || math.IsInf(x, 0)) {
			err = errors.New("not a finite number")
		}
		return x, err
	case schema.Bool:
		return strconv.ParseBool(s)
	}
	// A type that scans itself (a UUID) tells whether s is one of its
	// values, and binds as its driver value.
	if scanner, ok := reflect.New(f.IndirectFieldType).Interface().(sql.Scanner); ok {
		if err := scanner.Scan(s); err != nil {
			return nil, err
		}
		if valuer, ok := scanner.(driver.Valuer); ok {
			return valuer.Value()
		}
	}
	// Text, and types the database parses from text (times).
	return s, nil
}
