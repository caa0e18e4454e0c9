package capturetest

import (
	"fmt"
	"maps"
	"strconv"
	"testing"

	"github.com/restlive/restlive/live"
)

// M makes a map of key, value pairs.
func M(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// Task is a change of a todolist.Task, without a seq.
func Task(op live.Op, pk string, old, new map[string]string) live.Change {
	return live.Change{Model: "todolist.Task", PK: pk, Op: op, Old: old, New: new}
}

// InsertsInto14 is what inserting the tasks from to to into list 14
// publishes.
func InsertsInto14(from, to int) []live.Change {
	var out []live.Change
	for i := from; i <= to; i++ {
		out = append(out, Task(live.OpInsert, strconv.Itoa(i), nil, M("list_id", "14")))
	}
	return out
}

// SameChange compares everything but Seq.
func SameChange(a, b live.Change) bool {
	return a.Model == b.Model && a.PK == b.PK && a.Op == b.Op &&
		(a.Old == nil) == (b.Old == nil) && maps.Equal(a.Old, b.Old) &&
		(a.New == nil) == (b.New == nil) && maps.Equal(a.New, b.New)
}

// CheckChanges checks got against want, but for Seq, which must increase.
func CheckChanges(t testing.TB, got, want []live.Change) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d changes, want %d", len(got), len(want))
	}
	errs := 0
	for i := range min(len(got), len(want)) {
		if errs > 5 {
			t.Fatal("too many errors")
		}
		if !SameChange(got[i], want[i]) {
			errs++
			t.Errorf("change %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
		// Seqs increase; by one, but on SQLite a replaced row and its
		// insert are one change, with the seq of the second.
		if i > 0 && (got[i].Seq <= got[i-1].Seq || got[i].Seq > got[i-1].Seq+2) {
			errs++
			t.Errorf("change %d: seq %d follows %d", i, got[i].Seq, got[i-1].Seq)
		}
	}
}

// SameChanges compares changes, Seq included.
func SameChanges(got, want []live.Change) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d changes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !SameChange(got[i], want[i]) {
			return fmt.Errorf("change %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
	return nil
}

// Of returns the changes of models among changes, with a Seq above from.
func Of(changes []live.Change, from uint64, models ...string) []live.Change {
	var out []live.Change
	for _, c := range changes {
		for _, m := range models {
			if c.Model == m && c.Seq > from {
				out = append(out, c)
			}
		}
	}
	return out
}
