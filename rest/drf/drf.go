// Package drf answers HTTP requests in the shapes of Django REST
// Framework, which django-rest-live's front ends expect: a page of a
// list, and an error's detail. Package rest answers with it; a handler
// written by hand (over sqlview, without an ORM) uses it to answer the
// same bytes.
package drf

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Limits reads ?limit= and ?offset= of r, as LimitOffsetPagination does:
// a value that is not a positive integer is ignored (the limit is then
// size, the offset 0), and a limit beyond max is max.
func Limits(r *http.Request, size, max int) (limit, offset int) {
	limit = size
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		limit = min(n, max)
	}
	if n, err := strconv.Atoi(q.Get("offset")); err == nil && n > 0 {
		offset = n
	}
	return limit, offset
}

// Page returns one page of a list of count instances, the one limit and
// offset name: {"count", "next", "previous", "results"}, with the absolute
// URLs of the pages around it (null at either end), and results, the
// page's encoded instances joined by commas.
func Page(r *http.Request, count int64, limit, offset int, results []byte) []byte {
	b := []byte(`{"count":`)
	b = strconv.AppendInt(b, count, 10)
	b = append(b, `,"next":`...)
	if int64(limit) < count-int64(offset) { // offset+limit < count, which may overflow
		b = appendURL(b, r, limit, offset+limit)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"previous":`...)
	if offset > 0 {
		b = appendURL(b, r, limit, max(0, offset-limit))
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"results":[`...)
	b = append(b, results...)
	return append(b, "]}"...)
}

// appendURL appends, as a JSON string, the absolute URL of the request
// with limit and offset (left out when 0, as Django REST Framework does).
func appendURL(b []byte, r *http.Request, limit, offset int) []byte {
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		u = &url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	}
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil {
		u.Scheme = "https"
	}
	q := u.Query()
	q.Set("limit", strconv.Itoa(limit))
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	} else {
		q.Del("offset")
	}
	u.RawQuery = q.Encode()
	// Without HTML escaping, "&" stays "&", as Django REST Framework
	// writes it.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(u.String()) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// WriteDetail answers code with {"detail": detail}, Django REST
// Framework's body of an error.
func WriteDetail(w http.ResponseWriter, code int, detail string) {
	body, _ := json.Marshal(struct {
		Detail string `json:"detail"`
	}{detail})
	WriteJSON(w, code, body)
}

// WriteJSON answers code with body, JSON.
func WriteJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body) // a client that went away is not an error to report
}
