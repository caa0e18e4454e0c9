package live

import (
	"slices"
	"testing"
)

func TestChangeTopics(t *testing.T) {
	c := Change{Model: "a.T", PK: "5", Op: OpUpdate,
		Old: map[string]string{"list_id": "14", "owner": "al"},
		New: map[string]string{"list_id": "15", "owner": "al"}}
	got := make([]string, 0)
	for _, tp := range c.Topics() {
		got = append(got, tp.String())
	}
	slices.Sort(got)
	want := []string{"a.T//", "a.T/list_id/14", "a.T/list_id/15", "a.T/owner/al", "a.T/pk/5"}
	if !slices.Equal(got, want) {
		t.Fatalf("Topics() = %v, want %v", got, want)
	}
}
