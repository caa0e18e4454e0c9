package drf_test

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/restlive/restlive/rest/drf"
)

// Hostile or malformed ?limit= and ?offset= give a page with sane links:
// an unparsable or non-positive value is ignored, a limit is at most the
// maximum, and an offset near the largest int does not wrap the next
// page's link around to the first page.
func TestLimitsHostile(t *testing.T) {
	const size, max = 100, 1000
	for _, tt := range []struct {
		query         string
		limit, offset int
		next          bool // whether the page of 5 instances has a next one
	}{
		{"limit=abc&offset=xyz", size, 0, false},
		{"limit=-5&offset=-1", size, 0, false},
		{"limit=0", size, 0, false},
		{"limit=99999999999999999999", size, 0, false}, // out of range: ignored
		{"limit=2", 2, 0, true},
		{"limit=5000", max, 0, false},
		{"limit=1&offset=" + strconv.Itoa(int(^uint(0)>>1)), 1, int(^uint(0) >> 1), false},
		{"limit=1000&offset=" + strconv.Itoa(int(^uint(0)>>1)-10), max, int(^uint(0)>>1) - 10, false},
	} {
		r := httptest.NewRequest("GET", "http://api.test/tasks/?"+tt.query, nil)
		limit, offset := drf.Limits(r, size, max)
		if limit != tt.limit || offset != tt.offset {
			t.Errorf("%s: limit %d, offset %d; want %d, %d", tt.query, limit, offset, tt.limit, tt.offset)
			continue
		}
		var page struct {
			Count          int64
			Next, Previous *string
			Results        []json.RawMessage
		}
		if err := json.Unmarshal(drf.Page(r, 5, limit, offset, nil), &page); err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		if (page.Next != nil) != tt.next {
			t.Errorf("%s: next %v, want one: %v", tt.query, page.Next, tt.next)
		}
		if page.Next != nil {
			u, err := url.Parse(*page.Next)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := strconv.Atoi(u.Query().Get("offset")); got != offset+limit {
				t.Errorf("%s: next %s, want offset %d", tt.query, *page.Next, offset+limit)
			}
		}
	}
}
