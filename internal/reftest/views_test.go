package reftest

import (
	"context"
	"reflect"
	"strings"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/sqlview"
)

// The suite defines its views once, in the words of GORM's query builder,
// and serves each through a gormlive.View and through a sqlview.View:
// both kinds must pass every test.

// kind is a kind of view and what its views read through.
type kind int

const (
	gormKind kind = iota // gormlive.View
	sqlKind              // sqlview.View over database/sql
	pgxKind              // sqlview.View over a pgx pool
)

func (k kind) String() string { return [...]string{"gormlive", "sqlview", "sqlview-pgx"}[k] }

// view is a view of the model M as a test defines it: the fields of a
// gormlive.View, with a Query that builds a queryset.
type view[M any] struct {
	Label        string
	LookupField  string
	GroupFields  []string
	Args         []string
	QueryParams  []string
	Dependencies []live.Dependency
	Query        func(ctx context.Context, db *queryset, req *live.Request) (*queryset, error)
	Permit       func(ctx context.Context, req *live.Request) error
	PermitObject func(ctx context.Context, req *live.Request, m *M) error
	Serialize    func(ctx context.Context, req *live.Request, m *M) (any, error)
	QueryVary    func(req *live.Request) string
}

// queryset is a query as the tests write one, with the methods of
// *gorm.DB they use.
type queryset struct {
	sel   string
	joins []string
	conds []cond
}

type cond struct {
	sql  string
	args []any
}

func (q queryset) Select(s string) *queryset { q.sel = s; return &q }

func (q queryset) Joins(s string) *queryset {
	q.joins = append(q.joins[:len(q.joins):len(q.joins)], s)
	return &q
}

func (q queryset) Where(sql string, args ...any) *queryset {
	q.conds = append(q.conds[:len(q.conds):len(q.conds)], cond{sql, args})
	return &q
}

// liveView is a view of any model, built for an app.
type liveView interface {
	build(a *app) live.View
}

func (v *view[M]) build(a *app) live.View {
	if a.kind == gormKind {
		return v.gorm(a)
	}
	return v.sql(a)
}

func (v *view[M]) gorm(a *app) *gormlive.View[M] {
	g := &gormlive.View[M]{
		Label: v.Label, DB: a.db, LookupField: v.LookupField, GroupFields: v.GroupFields,
		Args: v.Args, QueryParams: v.QueryParams, Dependencies: v.Dependencies,
		Permit: v.Permit, PermitObject: v.PermitObject, Serialize: v.Serialize, QueryVary: v.QueryVary,
	}
	if v.Query != nil {
		g.Query = func(ctx context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			q, err := v.Query(ctx, &queryset{}, req)
			if err != nil {
				return nil, err
			}
			if q.sel != "" {
				db = db.Select(q.sel)
			}
			for _, j := range q.joins {
				db = db.Joins(j)
			}
			for _, c := range q.conds {
				db = db.Where(c.sql, c.args...)
			}
			return db, nil
		}
	}
	return g
}

// sql builds the sqlview.View of v. Its select list and joins are what
// Query gives a request with no arguments: the tests' are the same for
// every request.
func (v *view[M]) sql(a *app) *sqlview.View[M] {
	table := a.db.NamingStrategy.TableName(reflect.TypeFor[M]().Name())
	s := &sqlview.View[M]{
		Label: v.Label, DB: a.querier, Table: table, Select: table + ".*",
		LookupField: v.LookupField, GroupFields: v.GroupFields,
		Args: v.Args, QueryParams: v.QueryParams, Dependencies: v.Dependencies,
		Permit: v.Permit, PermitObject: v.PermitObject, Serialize: v.Serialize, QueryVary: v.QueryVary,
	}
	if v.Query == nil {
		return s
	}
	static, err := v.Query(context.Background(), &queryset{}, &live.Request{Args: map[string]string{}})
	if err != nil {
		panic(err)
	}
	if static.sel != "" {
		s.Select = static.sel
	}
	s.From = strings.Join(append([]string{table}, static.joins...), " ")
	s.Query = func(ctx context.Context, req *live.Request, f *sqlview.Filter) error {
		q, err := v.Query(ctx, &queryset{}, req)
		if err != nil {
			return err
		}
		for _, c := range q.conds {
			f.Where(c.sql, c.args...)
		}
		return nil
	}
	return s
}

// installCapture installs the capture of v's table as v's kind describes
// it.
func (a *app) installCapture(v liveView) error {
	t, err := v.build(a).(interface {
		CaptureTable() (capture.Table, error)
	}).CaptureTable()
	if err != nil {
		return err
	}
	return capture.Install(context.Background(), a.sqlDB, a.dialect, t)
}

// counting counts the queries run through a Querier, as the GORM callback
// counts GORM's.
type counting struct {
	sqlview.Querier
	n *atomic.Int64
}

func (c counting) Query(ctx context.Context, query string, args ...any) (sqlview.Rows, error) {
	c.n.Add(1)
	return c.Querier.Query(ctx, query, args...)
}
