package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/restlive/restlive/live"
)

const (
	alice = "alice-token"
	bob   = "bob-token"
)

// created returns the id in the body of a create.
func created(t *testing.T, body string) string {
	t.Helper()
	var v struct{ ID uint }
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.ID == 0 {
		t.Fatalf("no id in %s (%v)", body, err)
	}
	return strconv.FormatUint(uint64(v.ID), 10)
}

func TestListLifecycle(t *testing.T) {
	a := newApp(t)
	body := a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"groceries","public":false,"owner":2}`)
	id := created(t, body)
	if want := `{"id":` + id + `,"name":"groceries","public":false,"owner":1,"task_count":0}`; body != want {
		t.Fatalf("create answered %s, want %s", body, want)
	}
	a.must(t, 201, "POST", "/api/tasks/", alice, `{"text":"milk","list":`+id+`}`)

	// Read back through the queryset: the count is computed there.
	for _, path := range []string{"/api/lists/" + id + "/", "/api/lists/" + id} {
		got := a.must(t, 200, "GET", path, alice, "")
		if want := `{"id":` + id + `,"name":"groceries","public":false,"owner":1,"task_count":1}`; got != want {
			t.Fatalf("GET %s = %s, want %s", path, got, want)
		}
	}
	got := a.must(t, 200, "PATCH", "/api/lists/"+id+"/", alice, `{"public":true}`)
	if want := `{"id":` + id + `,"name":"groceries","public":true,"owner":1,"task_count":1}`; got != want {
		t.Fatalf("PATCH = %s, want %s", got, want)
	}
	got = a.must(t, 200, "PUT", "/api/lists/"+id+"/", alice, `{"name":"food","public":false}`)
	if want := `{"id":` + id + `,"name":"food","public":false,"owner":1,"task_count":1}`; got != want {
		t.Fatalf("PUT = %s, want %s", got, want)
	}
	got = a.must(t, 200, "GET", "/api/lists/", alice, "")
	if want := `{"count":1,"next":null,"previous":null,"results":[{"id":` + id + `,"name":"food","public":false,"owner":1,"task_count":1}]}`; got != want {
		t.Fatalf("list = %s, want %s", got, want)
	}
	if got, want := a.must(t, 200, "GET", "/api/lists/", bob, ""), `{"count":0,"next":null,"previous":null,"results":[]}`; got != want {
		t.Fatalf("bob lists %s, want %s", got, want)
	}
	res := a.do(t, "DELETE", "/api/lists/"+id+"/", alice, "")
	if res.code != 204 || res.body != "" {
		t.Fatalf("DELETE: %d %q, want 204 and no body", res.code, res.body)
	}
	a.must(t, 404, "GET", "/api/lists/"+id+"/", alice, "")
	a.must(t, 404, "DELETE", "/api/lists/"+id+"/", alice, "")
}

func TestRefusals(t *testing.T) {
	a := newApp(t)
	public := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"shared","public":true}`))
	private := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"mine"}`))
	task := created(t, a.must(t, 201, "POST", "/api/tasks/", alice, `{"text":"secret","list":`+private+`}`))
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`

	for _, tc := range []struct {
		name                      string
		method, path, token, body string
		code                      int
		want                      string // the body, when it is checked
	}{
		{"anonymous create", "POST", "/api/lists/", "", `{"name":"x"}`, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"anonymous change", "PATCH", "/api/lists/" + public + "/", "", `{"name":"x"}`, 401, ""},
		{"anonymous delete", "DELETE", "/api/lists/" + public + "/", "", "", 401, ""},
		{"non-owner change of a public list", "PATCH", "/api/lists/" + public + "/", bob, `{"name":"x"}`, 403, `{"detail":"You do not have permission to perform this action."}`},
		{"non-owner delete of a public list", "DELETE", "/api/lists/" + public + "/", bob, "", 403, ""},
		{"non-owner change of a private list", "PATCH", "/api/lists/" + private + "/", bob, `{"name":"x"}`, 404, `{"detail":"Not found."}`},
		{"non-owner read of a private list", "GET", "/api/lists/" + private + "/", bob, "", 404, `{"detail":"Not found."}`},
		{"anonymous read of a private list", "GET", "/api/lists/" + private + "/", "", "", 404, ""},
		{"task of an invisible list", "GET", "/api/tasks/" + task + "/", bob, "", 404, ""},
		{"task moved to an invisible list", "POST", "/api/tasks/", bob, `{"text":"x","list":` + private + `}`, 400, `{"list":["Invalid pk \"` + private + `\" - object does not exist."]}`},
		{"missing", "GET", "/api/lists/999/", alice, "", 404, ""},
		{"lookup of the wrong type", "GET", "/api/lists/abc/", alice, "", 404, ""},
		{"path too deep", "GET", "/api/lists/" + public + "/x/", alice, "", 404, ""},
		{"bad JSON", "POST", "/api/lists/", alice, `{"name": nope}`, 400, `{"detail":"JSON parse error - invalid character 'o' in literal null (expecting 'u') at offset 11"}`},
		{"empty body", "POST", "/api/lists/", alice, " ", 400, `{"detail":"JSON parse error - unexpected end of JSON input at offset 1"}`},
		{"not an object", "POST", "/api/lists/", alice, `["x"]`, 400, `{"non_field_errors":["Invalid data. Expected an object, but got array."]}`},
		{"wrong type", "PATCH", "/api/lists/" + public + "/", alice, `{"public":"yes"}`, 400, `{"public":["Must be a boolean, got string."]}`},
		{"wrong type, default Decode", "POST", "/api/tasks/", alice, `{"text":"x","list":"one"}`, 400, `{"list":["Must be an integer, got string."]}`},
		{"required field", "PUT", "/api/lists/" + public + "/", alice, `{"public":true}`, 400, `{"name":["This field is required."]}`},
		{"blank field", "POST", "/api/lists/", alice, `{"name":" "}`, 400, `{"name":["This field may not be blank."]}`},
		{"two field errors", "POST", "/api/tasks/", alice, `{"list":999}`, 400, `{"list":["Invalid pk \"999\" - object does not exist."],"text":["This field may not be blank."]}`},
		{"unknown filter value", "GET", "/api/tasks/?done=maybe", alice, "", 400, `{"detail":"done: \"maybe\" is neither true nor false"}`},
		{"unknown filter value on a write", "POST", "/api/tasks/?list=x", alice, `{"text":"x","list":` + public + `}`, 400, ""},
		{"method on the list", "DELETE", "/api/lists/", alice, "", 405, `{"detail":"Method \"DELETE\" not allowed."}`},
		{"method on an instance", "POST", "/api/lists/" + public + "/", alice, `{}`, 405, ""},
		{"body too large", "POST", "/api/lists/", alice, big, 413, `{"detail":"Request body is larger than 1048576 bytes."}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := a.do(t, tc.method, tc.path, tc.token, tc.body)
			if res.code != tc.code || (tc.want != "" && res.body != tc.want) {
				t.Fatalf("%s %s: got %d %s, want %d %s", tc.method, tc.path, res.code, res.body, tc.code, tc.want)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			switch tc.code {
			case 401:
				if h := res.header.Get("WWW-Authenticate"); h != "Token" {
					t.Errorf("WWW-Authenticate %q, want Token", h)
				}
			case 405:
				want := "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
				if tc.path == "/api/lists/" {
					want = "GET, HEAD, POST, OPTIONS"
				}
				if h := res.header.Get("Allow"); h != want {
					t.Errorf("Allow %q, want %q", h, want)
				}
			}
		})
	}

	// Nothing refused was written.
	var names []string
	a.db.Model(&List{}).Order("id").Pluck("name", &names)
	if strings.Join(names, ",") != "shared,mine" {
		t.Fatalf("lists after refusals: %v", names)
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	a := newApp(t)
	res := a.send(t, "POST", "/api/lists/", alice, "text/plain", `{"name":"x"}`)
	if res.code != 415 {
		t.Fatalf("text/plain body: %d %s, want 415", res.code, res.body)
	}
	res = a.send(t, "POST", "/api/lists/", alice, "application/json; charset=utf-8", `{"name":"x"}`)
	if res.code != 201 {
		t.Fatalf("application/json with charset: %d %s, want 201", res.code, res.body)
	}
}

func TestTasks(t *testing.T) {
	a := newApp(t)
	public := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"shared","public":true}`))
	private := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"mine"}`))
	// Anyone who sees a public list adds to it, anonymous users too.
	a.must(t, 201, "POST", "/api/tasks/", "", `{"text":"Buy milk","list":`+public+`}`)
	milk2 := created(t, a.must(t, 201, "POST", "/api/tasks/", bob, `{"text":"oat MILK","list":`+public+`,"done":true}`))
	a.must(t, 201, "POST", "/api/tasks/", alice, `{"text":"private milk","list":`+private+`}`)

	texts := func(body string) string {
		var page struct{ Results []Task }
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var out []string
		for _, task := range page.Results {
			out = append(out, task.Text)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		token, query, want string
	}{
		{alice, "", "Buy milk,oat MILK,private milk"},
		{bob, "", "Buy milk,oat MILK"},
		{"", "", "Buy milk,oat MILK"},
		{alice, "?search=milk&done=false", "Buy milk,private milk"},
		{alice, "?search=MILK&done=true", "oat MILK"},
		{alice, "?list=" + private, "private milk"},
		{bob, "?list=" + private, ""},
		{bob, "?search=oat", "oat MILK"},
	} {
		if got := texts(a.must(t, 200, "GET", "/api/tasks/"+tc.query, tc.token, "")); got != tc.want {
			t.Errorf("tasks%s as %q: %q, want %q", tc.query, tc.token, got, tc.want)
		}
	}

	// Bob may change a task of a public list, but not move it to a list he
	// cannot see.
	a.must(t, 200, "PATCH", "/api/tasks/"+milk2+"/", bob, `{"done":false}`)
	a.must(t, 400, "PATCH", "/api/tasks/"+milk2+"/", bob, `{"list":`+private+`}`)
	a.must(t, 204, "DELETE", "/api/tasks/"+milk2+"/", "", "")
	a.must(t, 404, "GET", "/api/tasks/"+milk2+"/", alice, "")
}

// TestEncodeIsResponse checks that a GET answers exactly the bytes the
// view's Encode gives for the same request: what a broadcast carries.
func TestEncodeIsResponse(t *testing.T) {
	a := newApp(t)
	// Characters that encoding/json escapes (HTML) or that need escaping.
	id := created(t, a.must(t, 201, "POST", "/api/lists/", alice, `{"name":"<b>Tom & \"Jerry\"</b> \u2028 é","public":true}`))
	created(t, a.must(t, 201, "POST", "/api/lists/", bob, `{"name":"bob's"}`))
	created(t, a.must(t, 201, "POST", "/api/tasks/", bob, `{"text":"a\tb","list":`+id+`}`))

	for _, token := range []string{alice, bob, ""} {
		httpReq, _ := http.NewRequest("GET", "/", nil)
		if token != "" {
			httpReq.Header.Set("Authorization", "Token "+token)
		}
		id, err := authenticate(httpReq)
		if err != nil {
			t.Fatal(err)
		}
		req := &live.Request{HTTP: httpReq, User: id.User, UserID: id.ID, Action: "retrieve"}
		qs, err := a.lists.Queryset(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		var ls []List
		if err := qs.Order("id").Find(&ls).Error; err != nil {
			t.Fatal(err)
		}
		var all []string
		for i := range ls {
			want, err := a.lists.Encode(context.Background(), req, &ls[i])
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, string(want))
			got := a.must(t, 200, "GET", "/api/lists/"+strconv.FormatUint(uint64(ls[i].ID), 10)+"/", token, "")
			if got != string(want) {
				t.Errorf("as %q: GET answered\n%q\nEncode gives\n%q", token, got, want)
			}
		}
		page := fmt.Sprintf(`{"count":%d,"next":null,"previous":null,"results":[%s]}`, len(all), strings.Join(all, ","))
		if got, want := a.must(t, 200, "GET", "/api/lists/", token, ""), page; got != want {
			t.Errorf("as %q: list answered\n%q\nwant\n%q", token, got, want)
		}
	}
}
