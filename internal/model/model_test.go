package model_test

import (
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

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

func rowModel(t testing.TB) *model.Model {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "m.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Of[Row](db, model.Options{Label: "a.Row", Writable: []string{"s", "code", "I8"}})
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

func TestWritableByJSONName(t *testing.T) {
	m := rowModel(t)
	if len(m.Writable) != 3 || m.Writable["s"] == nil || m.Writable["code"] == nil || m.Writable["I8"] == nil {
		t.Fatalf("writable %v", m.Writable)
	}
	db, _ := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "m.db")), &gorm.Config{Logger: logger.Discard})
	for _, names := range [][]string{{"id"}, {"S"}, {"nope"}} {
		if _, err := model.Of[Row](db, model.Options{Label: "a.Row", Writable: names}); err == nil {
			t.Errorf("writable %v accepted", names)
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
