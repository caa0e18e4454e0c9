package sqlview

import (
	"fmt"
	"strconv"
	"strings"
)

// A Filter holds the conditions a view's Query adds to the WHERE clause
// of its rows, each with the arguments bound to its parameters.
type Filter struct {
	conds []cond
}

type cond struct {
	sql  string
	args []any
}

// Where adds the condition sql, in which each ? outside quotes is a
// parameter bound to the next of args, whatever the dialect: values never
// become part of the statement's text.
func (f *Filter) Where(sql string, args ...any) {
	f.conds = append(f.conds, cond{sql, args})
}

// stmt builds a statement: text from the view's definition, and
// conditions whose parameters it numbers for the dialect.
type stmt struct {
	d    Dialect
	b    strings.Builder
	args []any
	err  error
}

func (s *stmt) raw(parts ...string) *stmt {
	for _, p := range parts {
		s.b.WriteString(p)
	}
	return s
}

// param adds one parameter bound to arg.
func (s *stmt) param(arg any) *stmt {
	s.args = append(s.args, arg)
	if s.d == Postgres {
		s.b.WriteString("$" + strconv.Itoa(len(s.args)))
	} else {
		s.b.WriteByte('?')
	}
	return s
}

// cond adds sql with each ? outside quoted text and comments made a
// parameter bound to the next of args.
func (s *stmt) cond(sql string, args []any) *stmt {
	n := 0
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(sql[i+1:], c)
			if end < 0 {
				s.err = fmt.Errorf("sqlview: condition %q: unterminated quote", sql)
				return s
			}
			s.b.WriteString(sql[i : i+end+2])
			i += end + 1
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '/' && strings.HasPrefix(sql[i:], "/*"):
			s.err = fmt.Errorf("sqlview: condition %q: comments are not allowed", sql)
			return s
		case c == '?':
			if n < len(args) {
				s.param(args[n])
			}
			n++
		default:
			s.b.WriteByte(c)
		}
	}
	if n != len(args) && s.err == nil {
		s.err = fmt.Errorf("sqlview: condition %q has %d parameters and %d arguments", sql, n, len(args))
	}
	return s
}

// in adds "column IN (...)" or, on PostgreSQL, "column = ANY(array)" for
// values; the array is one parameter, so the statement's text stays the
// same whatever their number.
func (s *stmt) in(column string, values []any, array any) *stmt {
	if s.d == Postgres && array != nil {
		return s.raw(column, " = ANY(").param(array).raw(")")
	}
	s.raw(column, " IN (")
	for i, v := range values {
		if i > 0 {
			s.raw(", ")
		}
		s.param(v)
	}
	return s.raw(")")
}

func (s *stmt) String() string { return s.b.String() }
