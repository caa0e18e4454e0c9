package rest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/restlive/restlive/gormlive"
)

// serve runs one request through the handlers in process, without a
// network, and fails unless it answers code.
func (a *app) serve(b *testing.B, code int, method, path, body string) {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.Header.Set("Authorization", "Token "+alice)
	w := httptest.NewRecorder()
	a.mux.ServeHTTP(w, r)
	if w.Code != code {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
}

func benchApp(b *testing.B, tasks int) *app {
	a := newApp(b)
	list := List{Name: "l", OwnerID: 1}
	if err := a.db.Create(&list).Error; err != nil {
		b.Fatal(err)
	}
	ts := make([]Task, tasks)
	for i := range ts {
		ts[i] = Task{Text: "task " + strconv.Itoa(i), ListID: list.ID}
	}
	if err := a.db.CreateInBatches(ts, 100).Error; err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkRetrieve(b *testing.B) {
	a := benchApp(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		a.serve(b, 200, "GET", "/api/tasks/1/", "")
	}
}

func BenchmarkList100(b *testing.B) {
	a := benchApp(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		a.serve(b, 200, "GET", "/api/tasks/", "")
	}
}

func BenchmarkPartialUpdate(b *testing.B) {
	a := benchApp(b, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		a.serve(b, 200, "PATCH", "/api/tasks/1/", `{"text":"t`+strconv.Itoa(i)+`"}`)
	}
}

// BenchmarkEncode is the serialization a response and a broadcast share.
func BenchmarkEncode(b *testing.B) {
	v := &gormlive.View[Task]{}
	note := "a note"
	task := &Task{ID: 1, Text: "buy milk", ListID: 2, Note: &note}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Encode(context.Background(), nil, task); err != nil {
			b.Fatal(err)
		}
	}
}
