package rest

import (
	"context"
	"reflect"

	"gorm.io/gorm/schema"
)

// snapshot copies the values of the updatable columns of instance, before
// a decode writes into it.
func snapshot(ctx context.Context, fields []*schema.Field, instance reflect.Value) []reflect.Value {
	snap := make([]reflect.Value, len(fields))
	for i, f := range fields {
		if updatable(f) {
			snap[i] = deepCopy(f.ReflectValueOf(ctx, instance))
		}
	}
	return snap
}

func updatable(f *schema.Field) bool {
	return f.DBName != "" && f.Updatable && !f.PrimaryKey
}

// changed lists the updatable columns whose values in instance differ from
// those of its snapshot.
func changed(ctx context.Context, fields []*schema.Field, snap []reflect.Value, instance reflect.Value) []string {
	var cols []string
	for i, f := range fields {
		if updatable(f) && !reflect.DeepEqual(snap[i].Interface(), f.ReflectValueOf(ctx, instance).Interface()) {
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
