package rest

import (
	"context"
	"fmt"
	"reflect"
	"strconv"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// model is what a handler needs of M's GORM schema.
type model struct {
	name      string
	pks       []*schema.Field
	lookup    *schema.Field
	lookupArg string
	// writable are the columns an update may change.
	writable []*schema.Field
}

func parseModel[M any](view *gormlive.View[M]) model {
	if view == nil || view.DB == nil {
		panic("rest: the view has no DB")
	}
	stmt := &gorm.Statement{DB: view.DB}
	if err := stmt.Parse(new(M)); err != nil {
		panic(fmt.Sprintf("rest: parse model %T: %v", new(M), err))
	}
	s := stmt.Schema
	m := model{name: view.Label, pks: s.PrimaryFields, lookupArg: live.PK}
	if m.name == "" {
		m.name = s.Name
	}
	if len(m.pks) == 0 {
		panic(fmt.Sprintf("rest: model %s has no primary key", s.Name))
	}
	if view.LookupField != "" {
		m.lookupArg = view.LookupField
		if m.lookup = s.FieldsByDBName[view.LookupField]; m.lookup == nil {
			panic(fmt.Sprintf("rest: model %s has no column %q (LookupField)", s.Name, view.LookupField))
		}
	} else if m.lookup = s.PrioritizedPrimaryField; m.lookup == nil {
		panic(fmt.Sprintf("rest: model %s has a composite primary key: set LookupField", s.Name))
	}
	for _, f := range s.Fields {
		if f.DBName != "" && f.Updatable && !f.PrimaryKey {
			m.writable = append(m.writable, f)
		}
	}
	return m
}

// column refers to a column of the queried table, qualified so that a
// queryset with joins stays unambiguous.
func column(name string) clause.Column {
	return clause.Column{Table: clause.CurrentTable, Name: name}
}

// lookupValue converts a lookup from the URL to the type of its column, so
// that every database compares it as that type; ok is false for a value the
// column cannot hold, which names no instance.
func (m *model) lookupValue(s string) (v any, ok bool) {
	t := m.lookup.IndirectFieldType
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		return n, err == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, t.Bits())
		return n, err == nil
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		return f, err == nil
	}
	return s, true
}

// wherePK narrows db to the row of instance.
func (m *model) wherePK(ctx context.Context, db *gorm.DB, instance reflect.Value) *gorm.DB {
	for _, f := range m.pks {
		v, _ := f.ValueOf(ctx, instance)
		db = db.Where(clause.Eq{Column: column(f.DBName), Value: v})
	}
	return db
}

// pkValues copies the primary key of instance.
func (m *model) pkValues(ctx context.Context, instance reflect.Value) []reflect.Value {
	vals := make([]reflect.Value, len(m.pks))
	for i, f := range m.pks {
		vals[i] = deepCopy(f.ReflectValueOf(ctx, instance))
	}
	return vals
}

// setPK sets the primary key of instance to vals from pkValues, or to zero
// values when vals is nil.
func (m *model) setPK(ctx context.Context, instance reflect.Value, vals []reflect.Value) {
	for i, f := range m.pks {
		if vals == nil {
			f.ReflectValueOf(ctx, instance).SetZero()
		} else {
			f.ReflectValueOf(ctx, instance).Set(vals[i])
		}
	}
}

// snapshot copies the values of the writable columns of instance, before a
// decode writes into it.
func (m *model) snapshot(ctx context.Context, instance reflect.Value) []reflect.Value {
	snap := make([]reflect.Value, len(m.writable))
	for i, f := range m.writable {
		snap[i] = deepCopy(f.ReflectValueOf(ctx, instance))
	}
	return snap
}

// changed lists the writable columns whose values in instance differ from
// those of its snapshot.
func (m *model) changed(ctx context.Context, snap []reflect.Value, instance reflect.Value) []string {
	var cols []string
	for i, f := range m.writable {
		if !reflect.DeepEqual(snap[i].Interface(), f.ReflectValueOf(ctx, instance).Interface()) {
			cols = append(cols, f.DBName)
		}
	}
	return cols
}

// deepCopy returns a copy of v that shares no pointer, slice or map with
// it, so that decoding into v (which writes through pointers and reuses
// slices) leaves the copy as it was. Unexported fields are copied as they
// are: the column types that have them (time.Time) are values. Column
// values hold no cycles.
func deepCopy(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	copyInto(c)
	return c
}

// copyInto replaces what the settable value v refers to with copies.
func copyInto(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			v.Set(deepCopy(v.Elem()).Addr())
		}
	case reflect.Interface:
		if !v.IsNil() {
			v.Set(deepCopy(v.Elem()))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				copyInto(v.Field(i))
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			copyInto(v.Index(i))
		}
	case reflect.Slice:
		if !v.IsNil() {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(s, v)
			for i := range s.Len() {
				copyInto(s.Index(i))
			}
			v.Set(s)
		}
	case reflect.Map:
		if !v.IsNil() {
			mp := reflect.MakeMapWithSize(v.Type(), v.Len())
			for iter := v.MapRange(); iter.Next(); {
				mp.SetMapIndex(iter.Key(), deepCopy(iter.Value()))
			}
			v.Set(mp)
		}
	}
}
