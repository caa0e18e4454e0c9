package model_test

import (
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/live"
)

// Code is a column type that scans itself: eight hex digits, stored in
// lower case, so that "ABCD0123" and "abcd0123" are one value.
type Code [4]byte

func (c *Code) Scan(src any) error {
	s, ok := src.(string)
	if !ok || len(s) != 8 {
		return errors.New("not a code")
	}
	_, err := hex.Decode(c[:], []byte(s))
	return err
}

func (c Code) Value() (driver.Value, error) { return hex.EncodeToString(c[:]), nil }

// Row has a column of each kind a view may group by or look up.
type Row struct {
	ID   int64 `json:"id"`
	I8   int8
	I32  int32
	U16  uint16
	U64  uint64
	F32  float32
	F64  float64
	B    bool
	S    string `json:"s"`
	Code Code   `json:"code"`
	Ptr  *int   `json:"ptr"`
}

// lower names a column by its Go name in lower case: enough for Row.
var lower = model.Naming{Tag: "db", Column: strings.ToLower, Separator: "."}

func rowModel(t testing.TB) *model.Model {
	t.Helper()
	fields, err := model.Struct(reflect.TypeFor[Row](), lower)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New("Row", fields, "id", model.Options{Label: "a.Row"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var columns = []string{live.PK, "i8", "i32", "u16", "u64", "f32", "f64", "b", "s", "code", "ptr"}

func TestParse(t *testing.T) {
	m := rowModel(t)
	for _, c := range []struct{ field, in, canonical, json string }{
		{live.PK, "007", "7", "7"},
		{"i8", "-128", "-128", "-128"},
		{"u16", "65535", "65535", "65535"},
		{"u64", "18446744073709551615", "18446744073709551615", "18446744073709551615"},
		{"f64", "1.50", "1.5", "1.5"},
		{"f64", "2", "2", "2"},
		{"b", "TRUE", "true", "true"},
		{"s", "01", "01", `"01"`},
		{"code", "ABCD0123", "abcd0123", `"abcd0123"`},
		{"ptr", "3", "3", "3"},
	} {
		v, err := m.Parse(c.field, c.in)
		if err != nil || v.Canonical != c.canonical || string(v.JSON) != c.json {
			t.Errorf("Parse(%s, %q) = %q %s %v; want %q %s", c.field, c.in, v.Canonical, v.JSON, err, c.canonical, c.json)
		}
	}
	for _, c := range []struct{ field, in string }{
		{"i8", "128"}, {"u16", "-1"}, {"i32", "1.5"}, {"f32", "NaN"}, {"f64", "Inf"}, {"b", "yes"}, {"code", "xyz"}, {"nope", "1"},
	} {
		if v, err := m.Parse(c.field, c.in); err == nil {
			t.Errorf("Parse(%s, %q) = %v, want an error", c.field, c.in, v)
		}
	}
}

// FuzzParse checks, for every column type, that a value parses to a
// canonical form that parses to itself (so that one value names one
// group however a client spells it), with valid JSON, and never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "-1", "007", "1e3", "1.5", "18446744073709551616", "true", "t", "", " 1", "abcd0123", "ABCD0123", "\x00", "NaN", "-0"} {
		for i := range columns {
			f.Add(uint8(i), s)
		}
	}
	m := rowModel(f)
	f.Fuzz(func(t *testing.T, col uint8, in string) {
		field := columns[int(col)%len(columns)]
		v, err := m.Parse(field, in)
		if err != nil {
			return
		}
		if !json.Valid(v.JSON) {
			t.Fatalf("Parse(%s, %q): JSON %q is not valid", field, in, v.JSON)
		}
		again, err := m.Parse(field, v.Canonical)
		if err != nil || again.Canonical != v.Canonical || string(again.JSON) != string(v.JSON) {
			t.Fatalf("Parse(%s, %q) = %q, whose Parse is %q %s %v", field, in, v.Canonical, again.Canonical, again.JSON, err)
		}
		if field != "s" && strings.TrimSpace(v.Canonical) != v.Canonical {
			t.Fatalf("Parse(%s, %q): canonical %q has spaces", field, in, v.Canonical)
		}
		_ = fmt.Sprint(v)
	})
}

// Nested is a row whose columns come from embedded and nested structs.
type Nested struct {
	Base
	*Audit `db:"audit"`
	Owner  struct{ Name string }
	Skip   int `db:"-"`
	hidden int
	Code   string `db:"code,omitempty"`
}

type Base struct{ ID int64 }

type Audit struct{ By string }

func TestStruct(t *testing.T) {
	fields, err := model.Struct(reflect.TypeFor[Nested](), lower)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.Column)
	}
	if want := "owner code id audit.by owner.name"; strings.Join(got, " ") != want {
		t.Errorf("columns %q, want %q", got, want)
	}
	m, err := model.New("Nested", fields, "id", model.Options{Label: "a.Nested", GroupFields: []string{"audit.by"}})
	if err != nil {
		t.Fatal(err)
	}
	n := &Nested{Base: Base{ID: 7}, hidden: 1} // hidden: unexported, no column
	// A nil embedded pointer holds no value: null, not a panic.
	if canon, j, err := model.FieldValue(t.Context(), m.Column("audit.by"), reflect.ValueOf(n)); err != nil || canon != "" || string(j) != "null" {
		t.Errorf("audit.by of a nil *Audit = %q %s %v, want null", canon, j, err)
	}
	n.Audit = &Audit{By: "ann"}
	if canon, j, err := model.FieldValue(t.Context(), m.Column("audit.by"), reflect.ValueOf(n)); err != nil || canon != "ann" || string(j) != `"ann"` {
		t.Errorf("audit.by = %q %s %v, want ann", canon, j, err)
	}
	if pk, id, err := m.Identify(t.Context(), reflect.ValueOf(n)); err != nil || pk != "7" || string(id) != `{"id":7}` {
		t.Errorf("Identify = %q %s %v", pk, id, err)
	}
	for _, c := range []struct {
		pk   string
		opts model.Options
		want string
	}{
		{"nope", model.Options{Label: "a.N"}, `view "a.N": primary key "nope" is not a column of Nested`},
		{"id", model.Options{Label: "a.N", GroupFields: []string{"skip"}}, `view "a.N": group field "skip" is not a column of Nested`},
		{"id", model.Options{Label: "a.N", GroupFields: []string{"pk"}}, `view "a.N": group field "pk" means the instance itself and cannot be listed`},
		{"id", model.Options{Label: "a.N", LookupField: "hidden"}, `view "a.N": lookup field "hidden" is not a column of Nested`},
	} {
		if _, err := model.New("Nested", fields, c.pk, c.opts); err == nil || err.Error() != c.want {
			t.Errorf("New(%s, %+v) = %v, want %s", c.pk, c.opts, err, c.want)
		}
	}
}
