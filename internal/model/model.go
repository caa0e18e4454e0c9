// Package model owns what restlive knows of a model's fields: its
// columns, its primary key, the lookup and group fields a view names, and
// how a value a client sends becomes a value of a field's type. Its
// fields come from a GORM schema (package gormmodel) or from a Go struct
// read by column name (Struct), so gormlive, rest and sqlview resolve and
// parse alike, and a view's subscriptions and its REST endpoint cannot
// disagree about any of it.
//
// It imports no ORM and no driver: a program that uses only one kind of
// view links only what that kind needs.
package model

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

	"github.com/restlive/restlive/live"
)

// A Field is a column of a model and the struct field that holds it.
type Field struct {
	// Column is the column's name.
	Column string
	// Type is the struct field's type.
	Type reflect.Type
	// Value returns the field within rv, the model's struct (addressable),
	// or the zero reflect.Value when a nil embedded pointer lies on the
	// way to it.
	Value func(ctx context.Context, rv reflect.Value) reflect.Value
}

// indirect returns the type the field holds, pointers removed.
func (f *Field) indirect() reflect.Type {
	t := f.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Bool reports whether the field holds a boolean.
func (f *Field) Bool() bool { return f.indirect().Kind() == reflect.Bool }

// A Model is a model's fields with those a view names resolved. It is
// read-only once built and safe for concurrent use.
type Model struct {
	Label string
	// Name is the Go type's name, for messages.
	Name   string
	Fields []*Field
	// PK is the single primary key field.
	PK *Field
	// Lookup is the field a retrieve names: PK unless the view names a
	// lookup field. LookupName is its name as the protocol and the REST
	// request's Args know it: live.PK or the column.
	Lookup     *Field
	LookupName string
	// LookupKey is the lookup field's key in an instance's identifying
	// fields, as JSON; nil when the lookup field is the primary key.
	LookupKey []byte

	byColumn map[string]*Field
}

// Options are the names a view gives.
type Options struct {
	Label       string
	LookupField string   // a column; "" for the primary key
	GroupFields []string // columns
	DepFields   []string // columns holding the pks of rows of other models
}

// New resolves opts against fields, the columns of the Go type name, whose
// primary key is the column pk. The errors say what is wrong with the
// view's definition, for start-up.
func New(name string, fields []*Field, pk string, opts Options) (*Model, error) {
	fail := func(format string, args ...any) (*Model, error) {
		return nil, fmt.Errorf("view %q: "+format, append([]any{opts.Label}, args...)...)
	}
	m := &Model{Label: opts.Label, Name: name, Fields: fields, byColumn: make(map[string]*Field, len(fields))}
	for _, f := range fields {
		if m.byColumn[f.Column] == nil {
			m.byColumn[f.Column] = f
		}
	}
	var err error
	if m.PK, err = m.column("primary key", pk); err != nil {
		return fail("%w", err)
	}
	m.Lookup, m.LookupName = m.PK, live.PK
	if opts.LookupField != "" {
		f, err := m.column("lookup field", opts.LookupField)
		if err != nil {
			return fail("%w", err)
		}
		m.Lookup, m.LookupName = f, opts.LookupField
		m.LookupKey, _ = json.Marshal(opts.LookupField)
	}
	for _, name := range opts.GroupFields {
		if name == live.PK {
			return fail("group field %q means the instance itself and cannot be listed", name)
		}
		if _, err := m.column("group field", name); err != nil {
			return fail("%w", err)
		}
	}
	for _, name := range opts.DepFields {
		if _, err := m.column("dependency field", name); err != nil {
			return fail("%w", err)
		}
	}
	return m, nil
}

func (m *Model) column(role, name string) (*Field, error) {
	f := m.byColumn[name]
	if f == nil {
		return nil, fmt.Errorf("%s %q is not a column of %s", role, name, m.Name)
	}
	return f, nil
}

// Column returns the field of the column name, or nil.
func (m *Model) Column(name string) *Field { return m.byColumn[name] }

// Field returns the field name names: live.PK, the lookup field, or a
// column.
func (m *Model) Field(name string) (*Field, error) {
	if name == live.PK {
		return m.PK, nil
	}
	return m.column("field", name)
}

// Parse returns a client's value of the field name as the protocol needs
// it: canonical, and as JSON (see live.View.Parse).
func (m *Model) Parse(name, value string) (live.Value, error) {
	f, err := m.Field(name)
	if err != nil {
		return live.Value{}, err
	}
	x, err := ParseValue(f, value)
	if err != nil {
		return live.Value{}, err
	}
	canon, err := live.Canonical(x)
	if err != nil {
		return live.Value{}, err
	}
	j, err := json.Marshal(x)
	if err != nil {
		return live.Value{}, err
	}
	return live.Value{Canonical: canon, JSON: j}, nil
}

// ParseValue converts s, a value as a client or a capture sends it, to the
// Go type of f's column, so that drivers bind it as that type (PostgreSQL
// compares an integer column to an integer parameter, not to text) and
// equal values have one canonical form ("01" is 1).
func ParseValue(f *Field, s string) (any, error) {
	t := f.indirect()
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.ParseInt(s, 10, t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.ParseUint(s, 10, t.Bits())
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(s, t.Bits())
		if err == nil && (math.IsNaN(x) || math.IsInf(x, 0)) {
			err = errors.New("not a finite number")
		}
		if x == 0 {
			x = 0 // not -0: one value, one form
		}
		return x, err
	case reflect.Bool:
		return strconv.ParseBool(s)
	}
	// A type that scans itself (a UUID) tells whether s is one of its
	// values, and binds as its driver value, which is canonical.
	if scanner, ok := reflect.New(t).Interface().(sql.Scanner); ok {
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

// FieldValue returns f's value in rv (a pointer to the struct) in
// canonical form and as JSON: a number for numeric columns, a string for
// text.
func FieldValue(ctx context.Context, f *Field, rv reflect.Value) (string, []byte, error) {
	fv := f.Value(ctx, reflect.Indirect(rv))
	if !fv.IsValid() {
		return "", []byte("null"), nil
	}
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

// Identify returns the primary key of rv (a pointer to the struct) in
// canonical form, and its identifying fields: the pk as "id", and the
// lookup field if it is not the pk.
func (m *Model) Identify(ctx context.Context, rv reflect.Value) (string, []byte, error) {
	pk, pkJSON, err := FieldValue(ctx, m.PK, rv)
	if err != nil {
		return "", nil, fmt.Errorf("primary key: %w", err)
	}
	id := make([]byte, 0, 8+len(pkJSON)+len(m.LookupKey)+16)
	id = append(id, `{"id":`...)
	id = append(id, pkJSON...)
	if m.LookupKey != nil {
		_, lookupJSON, err := FieldValue(ctx, m.Lookup, rv)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", m.Lookup.Column, err)
		}
		id = append(id, ',')
		id = append(id, m.LookupKey...)
		id = append(id, ':')
		id = append(id, lookupJSON...)
	}
	return pk, append(id, '}'), nil
}
