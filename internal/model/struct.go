package model

import (
	"context"
	"fmt"
	"reflect"
	"strings"
)

// Naming says how a struct's fields are named as columns, the way a
// scanning library reads them. Package sqlview passes scany's rules, so
// that the fields this package reads a row's keys from are the fields
// scany scanned them into.
type Naming struct {
	// Tag is the struct tag holding a field's column name ("db"); "-"
	// leaves the field out.
	Tag string
	// Column names a field without the tag, from its Go name.
	Column func(goName string) string
	// Separator joins the column names of a nested struct's field and of
	// the struct that holds it ("."). An embedded struct's fields are
	// columns of their own, unprefixed, unless its tag names a prefix.
	Separator string
}

// Struct returns the columns of the struct type t, named by n: every
// exported field, and the fields of nested and embedded structs, found
// breadth first; a column named twice is the first field found. This is
// the rule of github.com/georgysavva/scany/v2/dbscan, which the tests of
// package sqlview check against it.
func Struct(t reflect.Type, n Naming) ([]*Field, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct type", t)
	}
	type pending struct {
		t      reflect.Type
		index  []int
		prefix string
	}
	var fields []*Field
	seen := map[string]bool{}
	queue := []pending{{t: t}}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for i := range p.t.NumField() {
			sf := p.t.Field(i)
			if !sf.IsExported() && !sf.Anonymous {
				continue
			}
			tag, tagged := sf.Tag.Lookup(n.Tag)
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			index := append(append([]int(nil), p.index...), i)
			part := tag
			if !tagged {
				part = n.Column(sf.Name)
			}
			if !sf.Anonymous {
				if col := join(n.Separator, p.prefix, part); !seen[col] {
					seen[col] = true
					fields = append(fields, &Field{Column: col, Type: sf.Type, Value: byIndex(index)})
				}
			}
			child := sf.Type
			if child.Kind() == reflect.Pointer {
				child = child.Elem()
			}
			if child.Kind() == reflect.Struct {
				if sf.Anonymous {
					part = tag
				}
				queue = append(queue, pending{t: child, index: index, prefix: join(n.Separator, p.prefix, part)})
			}
		}
	}
	return fields, nil
}

func join(sep, prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + sep + name
}

// byIndex returns the accessor of the field at index, through embedded
// and nested pointers, which may be nil.
func byIndex(index []int) func(context.Context, reflect.Value) reflect.Value {
	return func(_ context.Context, rv reflect.Value) reflect.Value {
		for i, x := range index {
			if i > 0 {
				for rv.Kind() == reflect.Pointer {
					if rv.IsNil() {
						return reflect.Value{}
					}
					rv = rv.Elem()
				}
			}
			rv = rv.Field(x)
		}
		return rv
	}
}
