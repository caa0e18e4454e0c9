package outbox

import (
	"maps"
	"testing"

	"github.com/restlive/restlive/live"
)

func m(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestDecodeFields(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want map[string]string
	}{
		{`{"list_id": 14}`, m("list_id", "14")},
		{`{"a": 2.0, "b": 2.5, "c": "x", "d": true, "e": null}`, m("a", "2", "b", "2.5", "c", "x", "d", "true")},
		{`{"big": 9007199254740993}`, m("big", "9007199254740993")},
		{`{}`, m()},
	} {
		got, err := decodeFields([]byte(tt.in))
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("decodeFields(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if got, err := decodeFields(nil); got != nil || err != nil {
		t.Errorf("decodeFields(nil) = %v, %v", got, err)
	}
	if _, err := decodeFields([]byte(`{"a": [1]}`)); err == nil {
		t.Error("decodeFields accepted an array")
	}
}

// TestMergeReplaced: SQLite's replaced rows (op R) become the change the
// write they came before makes.
func TestMergeReplaced(t *testing.T) {
	row := func(seq uint64, pk, op, old, new string) Row {
		w := Row{Seq: seq, Model: "todolist.Task", PK: pk, Op: op}
		if old != "" {
			w.Old = []byte(old)
		}
		if new != "" {
			w.New = []byte(new)
		}
		return w
	}
	change := func(seq uint64, pk string, op live.Op, old, new map[string]string) live.Change {
		return live.Change{Seq: seq, Model: "todolist.Task", PK: pk, Op: op, Old: old, New: new}
	}
	l14, l15 := `{"list_id": 14}`, `{"list_id": 15}`
	for _, tt := range []struct {
		name string
		rows []Row
		want []live.Change
	}{
		{"replace", []Row{row(1, "1", "R", l14, ""), row(2, "1", "I", "", l15)},
			[]live.Change{change(2, "1", live.OpUpdate, m("list_id", "14"), m("list_id", "15"))}},
		{"upsert that updates", []Row{row(1, "1", "R", l14, ""), row(2, "1", "U", l14, l15)},
			[]live.Change{change(2, "1", live.OpUpdate, m("list_id", "14"), m("list_id", "15"))}},
		{"insert that did not happen", []Row{row(1, "1", "R", l14, ""), row(2, "2", "I", "", l15)},
			[]live.Change{
				change(1, "1", live.OpUpdate, m("list_id", "14"), m("list_id", "14")),
				change(2, "2", live.OpInsert, nil, m("list_id", "15")),
			}},
		{"last", []Row{row(1, "2", "I", "", l15), row(2, "1", "R", l14, "")},
			[]live.Change{
				change(1, "2", live.OpInsert, nil, m("list_id", "15")),
				change(2, "1", live.OpUpdate, m("list_id", "14"), m("list_id", "14")),
			}},
		{"followed by a delete", []Row{row(1, "1", "R", l14, ""), row(2, "1", "D", l14, "")},
			[]live.Change{
				change(1, "1", live.OpUpdate, m("list_id", "14"), m("list_id", "14")),
				change(2, "1", live.OpDelete, m("list_id", "14"), nil),
			}},
	} {
		got := Changes(nil, tt.rows)
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			g, w := got[i], tt.want[i]
			if g.Seq != w.Seq || g.PK != w.PK || g.Op != w.Op || !maps.Equal(g.Old, w.Old) || !maps.Equal(g.New, w.New) ||
				(g.Old == nil) != (w.Old == nil) || (g.New == nil) != (w.New == nil) {
				t.Errorf("%s: change %d is %+v, want %+v", tt.name, i, g, w)
			}
		}
	}
}
