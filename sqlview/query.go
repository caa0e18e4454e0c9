package sqlview

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/live"
)

// selection is what a statement reads of the queryset.
type selection struct {
	eq      *model.Field // narrowed to the rows where eq is eqValue, if set
	eqValue any
	pks     []any // narrowed to these keys, if not nil
	order   bool  // by primary key
	limit   int   // if positive
	offset  int
	lock    bool // FOR UPDATE, where the dialect has it
	count   bool // SELECT COUNT(*) of the rows
}

// statement builds the SELECT of sel over req's queryset.
func (v *View[R]) statement(ctx context.Context, req *live.Request, m *model.Model, d Dialect, sel selection) (*stmt, error) {
	var f Filter
	if v.Query != nil {
		if err := v.Query(ctx, req, &f); err != nil {
			return nil, err
		}
	}
	s := &stmt{d: d}
	if sel.count {
		s.raw("SELECT COUNT(*) FROM (")
	}
	s.raw("SELECT ", v.selectList(m), " FROM ", v.from())
	sep := " WHERE "
	for _, c := range f.conds {
		s.raw(sep, "(").cond(c.sql, c.args).raw(")")
		sep = " AND "
	}
	if sel.eq != nil {
		s.raw(sep, v.column(sel.eq.Column), " = ").param(sel.eqValue)
		sep = " AND "
	}
	if sel.pks != nil {
		s.raw(sep).in(v.column(m.PK.Column), sel.pks, pkArray(m.PK, sel.pks))
	}
	if sel.order {
		s.raw(" ORDER BY ", v.column(m.PK.Column))
	}
	if sel.limit > 0 {
		s.raw(" LIMIT ", strconv.Itoa(sel.limit))
	}
	if sel.offset > 0 {
		s.raw(" OFFSET ", strconv.Itoa(sel.offset))
	}
	if sel.lock && d == Postgres {
		s.raw(" FOR UPDATE")
	}
	if sel.count {
		s.raw(") AS page")
	}
	return s, s.err
}

// from returns the FROM clause.
func (v *View[R]) from() string {
	if v.From != "" {
		return v.From
	}
	return quote(v.Table)
}

// selectList returns Select, or R's columns as columns of Table.
func (v *View[R]) selectList(m *model.Model) string {
	if v.Select != "" {
		return v.Select
	}
	var cols []string
	for _, f := range m.Fields {
		if identifier.MatchString(f.Column) {
			cols = append(cols, v.column(f.Column))
		}
	}
	return strings.Join(cols, ", ")
}

// column returns name as a column of Table, quoted: the queryset may join
// tables with columns of the same name.
func (v *View[R]) column(name string) string { return quote(v.Table) + "." + quote(name) }

// quote quotes a name checked by Check, each part of a qualified one.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, ".", `"."`) + `"`
}

// pkArray returns pks as one array parameter of the primary key's type,
// for PostgreSQL; nil when the type has no array the driver binds.
func pkArray(pk *model.Field, pks []any) any {
	switch reflect.Indirect(reflect.New(pk.Type)).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		out := make([]int64, 0, len(pks))
		for _, p := range pks {
			switch p := p.(type) {
			case int64:
				out = append(out, p)
			case uint64:
				if p <= math.MaxInt64 {
					out = append(out, int64(p))
				}
			}
		}
		return out
	case reflect.String:
		out := make([]string, 0, len(pks))
		for _, p := range pks {
			if s, ok := p.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// each runs sel over req's queryset and calls fn with each row.
func (v *View[R]) each(ctx context.Context, req *live.Request, m *model.Model, sel selection, fn func(*R) error) error {
	q := DB(ctx, v.DB)
	s, err := v.statement(ctx, req, m, q.Dialect(), sel)
	if err != nil {
		return err
	}
	rows, err := q.Query(ctx, s.String(), s.args...)
	if err != nil {
		return fmt.Errorf("sqlview: %s: query: %w", v.Label, err)
	}
	defer rows.Close()
	rs := scanner.NewRowScanner(rows)
	for rows.Next() {
		r := new(R)
		if v.Scan != nil {
			err = v.Scan(rows, r)
		} else {
			err = rs.Scan(r)
		}
		if err != nil {
			return fmt.Errorf("sqlview: %s: scan: %w", v.Label, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlview: %s: query: %w", v.Label, err)
	}
	return nil
}

// find returns the rows of sel over req's queryset.
func (v *View[R]) find(ctx context.Context, req *live.Request, m *model.Model, sel selection) ([]R, error) {
	var out []R
	err := v.each(ctx, req, m, sel, func(r *R) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

// maxVars bounds the keys one IN list carries: SQLite before 3.32 refuses
// statements with more than 999 parameters. PostgreSQL takes them all as
// one array parameter instead.
const maxVars = 900

// findPKs returns the rows among pks (canonical forms) of req's queryset
// narrowed by sel: one query, or one per maxVars keys on SQLite. A key
// that is not of the primary key's type matches nothing.
func (v *View[R]) findPKs(ctx context.Context, req *live.Request, m *model.Model, sel selection, pks []string) ([]R, error) {
	vals := make([]any, 0, len(pks))
	for _, p := range pks {
		if x, err := model.ParseValue(m.PK, p); err == nil {
			vals = append(vals, x)
		}
	}
	chunk := len(vals)
	if DB(ctx, v.DB).Dialect() != Postgres {
		chunk = maxVars
	}
	var out []R
	for len(vals) > 0 {
		n := min(chunk, len(vals))
		sel.pks, vals = vals[:n], vals[n:]
		rows, err := v.find(ctx, req, m, sel)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}
