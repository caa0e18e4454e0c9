package sqlview

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/georgysavva/scany/v2/dbscan"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/live"
)

// View defines how the rows of a table, as the row type R, are served to
// real-time subscribers (it implements live.View) and read by the
// application's REST handlers (Get, Page, Find, Encode), from one
// definition: the counterpart of a Django REST Framework view with
// django-rest-live's RealtimeMixin, for applications that write their SQL
// themselves.
//
// R is a struct whose fields are the columns a query selects, named as
// scany names them: by their `db` tag, or else by their name in snake
// case (ListID is list_id), the fields of embedded structs included; sqlc
// generates such types. Rows are scanned into R by column name with
// github.com/georgysavva/scany/v2, or by Scan.
//
// Every statement is built from the view's definition and the conditions
// Query adds: group values, lookups, keys and the conditions' arguments
// are bound parameters, and the column names come only from the
// definition, checked when the view is registered.
//
// Every hook takes the request's context and the request, and returns an
// error: an *live.Error answers the client with its code, any other error
// is a failure. A View must not be changed once in use; its methods may
// be called concurrently.
type View[R any] struct {
	// Label is the model's label, "app.Model". Required.
	Label string
	// DB is where the rows are read: SQL(db, dialect) for database/sql,
	// pgxview.Pool(pool) for a pgx pool. Required.
	DB Querier
	// Table is the table whose rows the view serves and whose writes are
	// captured: "tasks", or "app.tasks" on PostgreSQL. Required.
	Table string
	// PK is Table's primary key column. Defaults to "id".
	PK string
	// From is the statement's FROM clause, when the rows join other
	// tables: "tasks JOIN lists ON lists.id = tasks.list_id". It must
	// name Table unaliased; the view qualifies its own conditions with
	// it. Defaults to Table.
	From string
	// Select is the select list, when R holds more than Table's columns:
	// "tasks.*, lists.public AS list_public". Defaults to the columns of
	// R, as columns of Table.
	Select string
	// Query narrows the rows to what req may see, the queryset: it adds
	// conditions to f, reading req.User, req.Args and req.Query (the
	// filters). Defaults to every row.
	Query func(ctx context.Context, req *live.Request, f *Filter) error
	// Scan reads the current row of rows into r, in place of scanning it
	// by column name: for code that scans by position, as sqlc's does.
	Scan func(rows Rows, r *R) error
	// Permit decides whether req may perform req.Action at all, before any
	// row is read; return live.ErrForbidden to refuse. Defaults to
	// allowing every action.
	Permit func(ctx context.Context, req *live.Request) error
	// PermitObject decides whether req may perform req.Action on r, a row
	// Query let through: nil allows, an *live.Error refuses. A row refused
	// for "retrieve" or "list" is invisible to req. Defaults to allowing.
	PermitObject func(ctx context.Context, req *live.Request, r *R) error
	// Serialize returns the JSON-encodable representation of r for req.
	// Defaults to r itself.
	Serialize func(ctx context.Context, req *live.Request, r *R) (any, error)
	// LookupField is the column that names one instance. Defaults to PK.
	LookupField string
	// GroupFields are the columns subscribers may group by ("list_id").
	GroupFields []string
	// QueryParams are the query parameters Query reads (the filters), and
	// Args the view keyword arguments. Others a request carries never
	// reach Query. Default to none.
	QueryParams, Args []string
	// ListAll lets clients subscribe to every row Query lets through,
	// narrowed only by QueryParams. Defaults to false.
	ListAll bool
	// Dependencies are the other models Query reads (see
	// live.Dependency). Defaults to none.
	Dependencies []live.Dependency
	// Vary returns what Query, Permit, PermitObject and Serialize read of
	// the request besides Args and QueryParams: subscriptions whose Vary,
	// group, Args and QueryParams are equal share one query and one
	// serialization per change. It must not do I/O. Defaults to
	// req.UserID.
	Vary func(req *live.Request) string
	// QueryVary returns what Query reads of the request besides Args and
	// QueryParams, when that is less than Vary: "" for a Query that reads
	// nothing of the user. Subscriptions whose QueryVary, group, Args and
	// QueryParams are equal then share one query per change, and
	// PermitObject and Serialize run on its rows for each. Defaults to
	// nil: each Vary runs its own query.
	QueryVary func(req *live.Request) string
}

var _ live.View = (*View[struct{ ID int }])(nil)

// naming is scany's, with which rows are scanned: the model reads keys
// from the fields scany fills.
var naming = model.Naming{Tag: "db", Column: dbscan.SnakeCaseMapper, Separator: "."}

// scanner scans rows by column name into R, as scany's sqlscan does.
var scanner = func() *dbscan.API {
	api, err := dbscan.NewAPI(dbscan.WithScannableTypes((*sql.Scanner)(nil)))
	if err != nil {
		panic(err)
	}
	return api
}()

// structFields caches the columns of each row type.
var structFields sync.Map // reflect.Type -> []*model.Field

// Spec describes the view to a live.Router.
func (v *View[R]) Spec() live.Spec {
	lookup := v.LookupField
	if lookup == "" {
		lookup = live.PK
	}
	return live.Spec{
		Model: v.Label, Lookup: lookup, GroupBy: v.GroupFields, ListAll: v.ListAll,
		Args: v.Args, QueryParams: v.QueryParams, Dependencies: v.Dependencies,
	}
}

// Parse returns a client's value of the field name (live.PK, LookupField
// or one of GroupFields) as the column's type in R holds it (see
// live.View.Parse): "01" of an integer column is 1.
func (v *View[R]) Parse(name, value string) (live.Value, error) {
	m, err := v.model()
	if err != nil {
		return live.Value{}, err
	}
	return m.Parse(name, value)
}

// identifier is a column or table name the view writes into statements.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Check reports what is wrong with the view's definition: a Label not of
// the form "app.Model", a nil DB, a Table, PK, LookupField, GroupFields or
// Dependencies field that is not a plain name, or that is not a column of
// R. A live.Router calls it when the view is registered, so a mistake
// stops the program at start rather than failing requests.
func (v *View[R]) Check() error {
	if !validLabel(v.Label) {
		return fmt.Errorf("sqlview: view %q: the label must have the form app.Model", v.Label)
	}
	for _, d := range v.Dependencies {
		if !validLabel(d.Model) {
			return fmt.Errorf("sqlview: view %q: dependency model %q must have the form app.Model", v.Label, d.Model)
		}
	}
	if v.DB == nil {
		return fmt.Errorf("sqlview: view %q: DB is nil", v.Label)
	}
	if d := v.DB.Dialect(); d != SQLite && d != Postgres {
		return fmt.Errorf("sqlview: view %q: DB has an unknown dialect %d", v.Label, d)
	}
	schema, table, qualified := strings.Cut(v.Table, ".")
	if !identifier.MatchString(schema) || qualified && !identifier.MatchString(table) {
		return fmt.Errorf("sqlview: view %q: Table %q is not a table name", v.Label, v.Table)
	}
	names := append([]string{v.pk(), v.LookupField}, v.GroupFields...)
	for _, d := range v.Dependencies {
		names = append(names, d.Field)
	}
	for _, name := range names {
		if name != "" && !identifier.MatchString(name) {
			return fmt.Errorf("sqlview: view %q: %q is not a column name", v.Label, name)
		}
	}
	_, err := v.model()
	return err
}

func (v *View[R]) pk() string {
	if v.PK == "" {
		return "id"
	}
	return v.PK
}

// model resolves the view's column names against R's fields.
func (v *View[R]) model() (*model.Model, error) {
	t := reflect.TypeFor[R]()
	fields, ok := structFields.Load(t)
	if !ok {
		f, err := model.Struct(t, naming)
		if err != nil {
			return nil, fmt.Errorf("sqlview: view %q: %w", v.Label, err)
		}
		fields, _ = structFields.LoadOrStore(t, f)
	}
	opts := model.Options{Label: v.Label, LookupField: v.LookupField, GroupFields: v.GroupFields}
	for _, d := range v.Dependencies {
		opts.DepFields = append(opts.DepFields, d.Field)
	}
	m, err := model.New(t.Name(), fields.([]*model.Field), v.pk(), opts)
	if err != nil {
		return nil, fmt.Errorf("sqlview: %w", err)
	}
	return m, nil
}

// validLabel reports whether label is "app.Model".
func validLabel(label string) bool {
	app, name, ok := strings.Cut(label, ".")
	return ok && identifier.MatchString(app) && identifier.MatchString(name)
}

// Encode returns the JSON of r as req sees it: json.Marshal of what
// Serialize returns (of r itself by default), compact and without a
// trailing newline: the exact bytes a broadcast's "instance" carries, and
// a REST response should.
func (v *View[R]) Encode(ctx context.Context, req *live.Request, r *R) ([]byte, error) {
	var out any = r
	if v.Serialize != nil {
		var err error
		if out, err = v.Serialize(ctx, req, r); err != nil {
			return nil, fmt.Errorf("sqlview: serialize %s: %w", v.Label, err)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("sqlview: encode %s: %w", v.Label, err)
	}
	return b, nil
}
