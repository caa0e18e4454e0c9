package sqlview

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite"

	"github.com/restlive/restlive/internal/model"
)

// Shapes has the struct shapes whose columns scany and package model must
// name alike: tags, snake case, embedded and nested structs, pointers.
type Shapes struct {
	ID       int64
	UserID   int64 `db:"owner"`
	HTTPCode int64
	Skipped  int64 `db:"-"`
	unseen   int64
	Inner
	*Ptr  `db:"ptr"`
	Child struct {
		Value int64
	}
}

type Inner struct {
	InnerValue int64
	ID         int64 // shadowed by Shapes.ID, found first
}

type Ptr struct{ Deep int64 }

// TestNamingAgreesWithScany scans a row whose every column holds a
// distinct number with scany, then reads each column with the model's
// field for it: the model must find each where scany put it.
func TestNamingAgreesWithScany(t *testing.T) {
	fields, err := model.Struct(reflect.TypeFor[Shapes](), naming)
	if err != nil {
		t.Fatal(err)
	}
	var cols, exprs []string
	for i, f := range fields {
		cols = append(cols, f.Column)
		exprs = append(exprs, strconv.Itoa(100+i)+` AS "`+f.Column+`"`)
	}
	// "child" is a column too, as scany names it, though a query selects
	// its field instead.
	if want := "id owner http_code child inner_value ptr.deep child.value"; strings.Join(cols, " ") != want {
		t.Errorf("columns %q, want %s", cols, want)
	}
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "n.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var selected []string
	for i, f := range fields {
		if k := f.Type.Kind(); k == reflect.Int64 {
			selected = append(selected, exprs[i])
		}
	}
	rows, err := db.Query("SELECT " + strings.Join(selected, ", "))
	if err != nil {
		t.Fatal(err)
	}
	var got []Shapes
	if err := scanner.ScanAll(&got, rows); err != nil {
		t.Fatal(err)
	}
	for i, f := range fields {
		if f.Type.Kind() != reflect.Int64 {
			continue
		}
		canon, _, err := model.FieldValue(context.Background(), f, reflect.ValueOf(&got[0]))
		if want := strconv.Itoa(100 + i); err != nil || canon != want {
			t.Errorf("column %s: the model reads %q %v where scany put %s", f.Column, canon, err, want)
		}
	}
	if got[0].Skipped != 0 || got[0].unseen != 0 {
		t.Errorf("scany filled fields it should not: %+v", got[0])
	}
}
