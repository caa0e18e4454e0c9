package drf_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/restlive/restlive/rest/drf"
)

// A list handler written by hand answers a page as package rest does.
func Example() {
	r := httptest.NewRequest("GET", "http://api.test/api/tasks/?limit=2&offset=2&list=14", nil)
	limit, offset := drf.Limits(r, 100, 1000)
	results := []byte(`{"id":3},{"id":4}`) // the page's instances, as the view encodes them
	w := httptest.NewRecorder()
	drf.WriteJSON(w, 200, drf.Page(r, 5, limit, offset, results))
	fmt.Println(w.Body)
	// Output:
	// {"count":5,"next":"http://api.test/api/tasks/?limit=2&list=14&offset=4","previous":"http://api.test/api/tasks/?limit=2&list=14","results":[{"id":3},{"id":4}]}
}
