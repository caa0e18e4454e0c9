// Package model owns what restlive knows of a GORM model's fields: its
// columns, its primary key, the lookup and group fields a view names, the
// fields clients may write, and how a value a client sends becomes a value
// of a field's type. Packages gormlive and rest both read it, so a view's
// subscriptions and its REST endpoint cannot disagree about any of it.
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
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/restlive/restlive/live"
)

// A Model is a GORM model's schema with the fields a view names resolved.
// It is read-only once built and safe for concurrent use.
type Model struct {
	Label  string
	Schema *schema.Schema
	// PK is the single primary key field.
	PK *schema.Field
	// Lookup is the field a retrieve names: PK unless the view names a
	// lookup field. LookupName is its name as the protocol and the REST
	// request's Args know it: live.PK or the column.
	Lookup     *schema.Field
	LookupName string
	// LookupKey is the lookup field's key in an instance's identifying
	// fields, as JSON; nil when the lookup field is the primary key.
	LookupKey []byte
	// Writable are the fields a client may write, by the JSON name it
	// sends them under.
	Writable map[string]*schema.Field
	// Postgres tells that the database takes an array parameter for
	// "pk = ANY(?)".
	Postgres bool
}

// Options are the names a view gives.
type Options struct {
	Label       string
	LookupField string   // a column; "" for the primary key
	GroupFields []string // columns
	DepFields   []string // columns holding the pks of rows of other models
	Writable    []string // JSON names
}

// Of resolves opts against the GORM schema of M. The errors say what is
// wrong with the view's definition, for start-up.
func Of[M any](db *gorm.DB, opts Options) (*Model, error) {
	fail := func(format string, args ...any) (*Model, error) {
		return nil, fmt.Errorf("view %q: "+format, append([]any{opts.Label}, args...)...)
	}
	if db == nil {
		return fail("DB is nil")
	}
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(new(M)); err != nil {
		return fail("parse model: %w", err)
	}
	s := stmt.Schema
	m := &Model{Label: opts.Label, Schema: s, PK: s.PrioritizedPrimaryField, Postgres: db.Dialector.Name() == "postgres"}
	if len(s.PrimaryFields) != 1 || m.PK == nil {
		return fail("%s must have exactly one primary key field, it has %d", s.Name, len(s.PrimaryFields))
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
	if err := m.resolveWritable(opts.Writable); err != nil {
		return fail("%w", err)
	}
	return m, nil
}

func (m *Model) column(role, name string) (*schema.Field, error) {
	f := m.Schema.FieldsByDBName[name]
	if f == nil {
		return nil, fmt.Errorf("%s %q is not a column of %s", role, name, m.Schema.Name)
	}
	if !f.Readable {
		return nil, fmt.Errorf("%s %q of %s is not readable", role, name, m.Schema.Name)
	}
	return f, nil
}

// resolveWritable finds each name among the JSON names of the columns a
// client may set: not the primary key, not read-only to GORM.
func (m *Model) resolveWritable(names []string) error {
	byJSON := make(map[string]*schema.Field)
	for _, f := range m.Schema.Fields {
		if f.DBName != "" {
			if name := JSONName(f); name != "" {
				byJSON[name] = f
			}
		}
	}
	m.Writable = make(map[string]*schema.Field, len(names))
	for _, name := range names {
		f := byJSON[name]
		switch {
		case f == nil:
			return fmt.Errorf("writable field %q is not the JSON name of a column of %s", name, m.Schema.Name)
		case f.PrimaryKey:
			return fmt.Errorf("writable field %q is the primary key of %s, which only the database sets", name, m.Schema.Name)
		case !f.Creatable && !f.Updatable:
			return fmt.Errorf("writable field %q of %s is read-only to GORM", name, m.Schema.Name)
		}
		m.Writable[name] = f
	}
	return nil
}

// JSONName returns the key encoding/json writes f under, "" if none.
func JSONName(f *schema.Field) string {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name
	}
	return name
}

// Field returns the field name names: live.PK, the lookup field, or a
// column.
func (m *Model) Field(name string) (*schema.Field, error) {
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
func ParseValue(f *schema.Field, s string) (any, error) {
	t := f.IndirectFieldType
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
func FieldValue(ctx context.Context, f *schema.Field, rv reflect.Value) (string, []byte, error) {
	fv := f.ReflectValueOf(ctx, rv)
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
			return "", nil, fmt.Errorf("%s: %w", m.Lookup.DBName, err)
		}
		id = append(id, ',')
		id = append(id, m.LookupKey...)
		id = append(id, ':')
		id = append(id, lookupJSON...)
	}
	return pk, append(id, '}'), nil
}
