package gormmodel_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/internal/model/gormmodel"
	"github.com/restlive/restlive/live"
)

type Row struct {
	ID     int64  `json:"id"`
	Count  uint16 `json:"count"`
	Ratio  float64
	Done   bool
	S      string `json:"s"`
	Ptr    *int   `json:"ptr"`
	Hidden string `json:"-" gorm:"-:all"`
	RO     string `gorm:"->"`
}

func open(t *testing.T) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "m.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestWritableByJSONName(t *testing.T) {
	db := open(t)
	m, err := gormmodel.Of[Row](db, gormmodel.Options{Options: model.Options{Label: "a.Row"}, Writable: []string{"s", "count", "Done"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Writable) != 3 || m.Writable["s"] == nil || m.Writable["count"] == nil || m.Writable["Done"] == nil {
		t.Fatalf("writable %v", m.Writable)
	}
	for _, names := range [][]string{{"id"}, {"S"}, {"nope"}, {"Hidden"}, {"RO"}} {
		if _, err := gormmodel.Of[Row](db, gormmodel.Options{Options: model.Options{Label: "a.Row"}, Writable: names}); err == nil {
			t.Errorf("writable %v accepted", names)
		}
	}
}

// TestAgreesWithStruct checks that a model read from GORM's schema and
// one read from the struct by column name resolve and parse alike: the
// two kinds of view cannot disagree about a value.
func TestAgreesWithStruct(t *testing.T) {
	opts := model.Options{Label: "a.Row", GroupFields: []string{"count", "done", "s", "ptr"}}
	g, err := gormmodel.Of[Row](open(t), gormmodel.Options{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	fields, err := model.Struct(reflect.TypeFor[Row](), model.Naming{Tag: "db", Column: gormColumn, Separator: "."})
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.New("Row", fields, "id", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{live.PK, "count", "ratio", "done", "s", "ptr"} {
		for _, in := range []string{"007", "65536", "-1", "1.50", "true", "1", "x", ""} {
			gv, gerr := g.Parse(field, in)
			sv, serr := s.Parse(field, in)
			if (gerr == nil) != (serr == nil) || gv.Canonical != sv.Canonical || string(gv.JSON) != string(sv.JSON) {
				t.Errorf("Parse(%s, %q): GORM %v %v, struct %v %v", field, in, gv, gerr, sv, serr)
			}
		}
	}
	r := &Row{ID: 3, Count: 2}
	gpk, gid, _ := g.Identify(t.Context(), reflect.ValueOf(r))
	spk, sid, _ := s.Identify(t.Context(), reflect.ValueOf(r))
	if gpk != spk || string(gid) != string(sid) {
		t.Errorf("Identify: GORM %s %s, struct %s %s", gpk, gid, spk, sid)
	}
}

// gormColumn is GORM's naming of these fields' columns.
func gormColumn(name string) string {
	if name == "RO" {
		return "ro"
	}
	return strings.ToLower(name)
}
