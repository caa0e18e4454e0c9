// Package gormmodel builds a model.Model from a GORM model's schema, and
// resolves what only GORM views have: the fields clients may write. It is
// the one place where package model meets GORM, so that views over plain
// SQL link no ORM.
package gormmodel

import (
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/restlive/restlive/internal/model"
)

// A Model is a GORM model's schema with the fields a view names resolved.
// It is read-only once built and safe for concurrent use.
type Model struct {
	*model.Model
	Schema *schema.Schema
	// PKField is the primary key's GORM field.
	PKField *schema.Field
	// Writable are the fields a client may write, by the JSON name it
	// sends them under.
	Writable map[string]*schema.Field
	// Postgres tells that the database takes an array parameter for
	// "pk = ANY(?)".
	Postgres bool
}

// Options are the names a GORM view gives.
type Options struct {
	model.Options
	Writable []string // JSON names
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
	if len(s.PrimaryFields) != 1 || s.PrioritizedPrimaryField == nil {
		return fail("%s must have exactly one primary key field, it has %d", s.Name, len(s.PrimaryFields))
	}
	if err := readable(s, opts.Options); err != nil {
		return fail("%w", err)
	}
	var fields []*model.Field
	for _, f := range s.Fields {
		if f.DBName != "" && f.Readable {
			fields = append(fields, &model.Field{Column: f.DBName, Type: f.FieldType, Value: f.ReflectValueOf})
		}
	}
	m, err := model.New(s.Name, fields, s.PrioritizedPrimaryField.DBName, opts.Options)
	if err != nil {
		return nil, err
	}
	gm := &Model{Model: m, Schema: s, PKField: s.PrioritizedPrimaryField, Postgres: db.Dialector.Name() == "postgres"}
	if gm.Writable, err = writable(s, opts.Writable); err != nil {
		return fail("%w", err)
	}
	return gm, nil
}

// readable refuses the columns a view names that GORM does not read.
func readable(s *schema.Schema, opts model.Options) error {
	named := map[string]string{opts.LookupField: "lookup field"}
	for _, g := range opts.GroupFields {
		named[g] = "group field"
	}
	for _, d := range opts.DepFields {
		named[d] = "dependency field"
	}
	for name, role := range named {
		if f := s.FieldsByDBName[name]; f != nil && !f.Readable {
			return fmt.Errorf("%s %q of %s is not readable", role, name, s.Name)
		}
	}
	return nil
}

// writable finds each name among the JSON names of the columns a client
// may set: not the primary key, not read-only to GORM.
func writable(s *schema.Schema, names []string) (map[string]*schema.Field, error) {
	byJSON := make(map[string]*schema.Field)
	for _, f := range s.Fields {
		if f.DBName != "" {
			if name := JSONName(f); name != "" {
				byJSON[name] = f
			}
		}
	}
	out := make(map[string]*schema.Field, len(names))
	for _, name := range names {
		f := byJSON[name]
		switch {
		case f == nil:
			return nil, fmt.Errorf("writable field %q is not the JSON name of a column of %s", name, s.Name)
		case f.PrimaryKey:
			return nil, fmt.Errorf("writable field %q is the primary key of %s, which only the database sets", name, s.Name)
		case !f.Creatable && !f.Updatable:
			return nil, fmt.Errorf("writable field %q of %s is read-only to GORM", name, s.Name)
		}
		out[name] = f
	}
	return out, nil
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
