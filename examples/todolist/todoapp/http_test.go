package todoapp

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// HTTP tests of every endpoint, the refusals included, on SQLite.

func TestRegister(t *testing.T) {
	t.Parallel()
	s := startSQLite(t)
	s.must(t, 201, "POST", "/api/auth/register", nil, `{"username":"alice","password":"correct horse"}`)

	for _, tc := range []struct {
		name, contentType, body string
		code                    int
		want                    string // in the body
	}{
		{"taken", "", `{"username":"alice","password":"another one"}`, 400, `"username":["A user with that username already exists."]`},
		{"missing fields", "", `{}`, 400, `"password":["This field is required."]`},
		{"bad username", "", `{"username":"a b","password":"correct horse"}`, 400, `"username"`},
		{"short password", "", `{"username":"bob","password":"short"}`, 400, `"password":["This password is too short.`},
		{"long password", "", `{"username":"bob","password":"` + strings.Repeat("x", 73) + `"}`, 400, `too long`},
		{"wrong type", "", `{"username":7,"password":"correct horse"}`, 400, `"username":["Must be a string, got number."]`},
		{"bad JSON", "", `{"username":`, 400, `JSON parse error`},
		{"not an object", "", `["alice"]`, 400, `Expected an object`},
		{"form", "application/x-www-form-urlencoded", `username=bob&password=correct+horse`, 415, `Unsupported media type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}
			res := s.do(t, "POST", "/api/auth/register", h, tc.body)
			if res.code != tc.code || !strings.Contains(res.body, tc.want) {
				t.Errorf("got %d %s, want %d with %s", res.code, res.body, tc.code, tc.want)
			}
		})
	}
	if res := s.do(t, "GET", "/api/auth/register", nil, ""); res.code != 405 {
		t.Errorf("GET register: got %d, want 405", res.code)
	}
}

func TestLoginLogout(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testLoginLogout(t, s) })
}

func testLoginLogout(t *testing.T, s *server) {
	alice := s.register(t, "alice")

	// The cookie suits a page served over plain HTTP on loopback, and
	// scripts cannot read it.
	c := alice.session
	if c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.MaxAge <= 0 {
		t.Errorf("session cookie %s: want Path=/, HttpOnly, SameSite=Lax, not Secure, Max-Age", c)
	}

	for _, tc := range []struct{ name, body string }{
		{"wrong password", `{"username":"alice","password":"wrong password"}`},
		{"unknown user", `{"username":"nobody","password":"password-of-nobody"}`},
	} {
		res := s.do(t, "POST", "/api/auth/login", nil, tc.body)
		if res.code != 400 || !strings.Contains(res.body, "Unable to log in with provided credentials.") {
			t.Errorf("%s: got %d %s, want 400", tc.name, res.code, res.body)
		}
		if len(res.cookies()) > 0 {
			t.Errorf("%s: a cookie was set: %v", tc.name, res.header["Set-Cookie"])
		}
	}
	if res := s.do(t, "POST", "/api/auth/login", nil, `{"username":"alice"}`); res.code != 400 || !strings.Contains(res.body, `"password":["This field is required."]`) {
		t.Errorf("login without password: got %d %s", res.code, res.body)
	}

	// The token and the cookie both make alice the owner of a private list.
	list := s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"mine","public":false}`)
	var l List
	list.decode(t, &l)
	path := fmt.Sprintf("/api/lists/%d/", l.ID)
	cookie := http.Header{"Cookie": {alice.session.Name + "=" + alice.session.Value}}
	if res := s.do(t, "GET", path, cookie, ""); res.code != 200 || res.body != list.body {
		t.Fatalf("GET with the session cookie: got %d %s, want 200 %s", res.code, res.body, list.body)
	}
	if res := s.do(t, "GET", path, nil, ""); res.code != 404 {
		t.Fatalf("GET anonymously: got %d %s, want 404", res.code, res.body)
	}

	// Logging out wants a JSON body, as every write does: a cross-site
	// form cannot send one.
	form := http.Header{"Cookie": cookie["Cookie"], "Content-Type": {"application/x-www-form-urlencoded"}}
	if res := s.do(t, "POST", "/api/auth/logout", form, "next=/"); res.code != 415 {
		t.Fatalf("logout by a form: got %d %s, want 415", res.code, res.body)
	}
	if res := s.do(t, "GET", path, cookie, ""); res.code != 200 {
		t.Fatalf("the form ended the session: GET answered %d", res.code)
	}
	// Logging out with the cookie ends the session, and expires the cookie.
	res := s.do(t, "POST", "/api/auth/logout", cookie, "{}")
	if res.code != 204 {
		t.Fatalf("logout: got %d %s", res.code, res.body)
	}
	if cs := res.cookies(); len(cs) != 1 || cs[0].Name != sessionCookie || cs[0].MaxAge >= 0 {
		t.Errorf("logout: want the session cookie expired, got %v", res.header["Set-Cookie"])
	}
	if res := s.do(t, "GET", path, cookie, ""); res.code != 404 {
		t.Errorf("GET with the ended session: got %d %s, want 404 (anonymous)", res.code, res.body)
	}
	// The token still works, until it logs out too.
	s.must(t, 200, "GET", path, alice, "")
	s.must(t, 204, "POST", "/api/auth/logout", alice, "{}")
	res = s.do(t, "GET", path, alice.header(), "")
	if res.code != 401 || res.header.Get("WWW-Authenticate") != "Token" || !strings.Contains(res.body, "Invalid token.") {
		t.Errorf("GET with the revoked token: got %d %v %s, want 401 Invalid token", res.code, res.header, res.body)
	}
	// Logging out anonymously is harmless.
	s.must(t, 204, "POST", "/api/auth/logout", nil, "{}")

	for _, h := range []string{"Token nonsense", "Bearer " + alice.token, "Token"} {
		if res := s.do(t, "GET", "/api/lists/", http.Header{"Authorization": {h}}, ""); res.code != 401 {
			t.Errorf("Authorization %q: got %d %s, want 401", h, res.code, res.body)
		}
	}
}

// fixture is two users and their lists: alice's private and public
// lists, and a task in each.
type fixture struct {
	s                   *server
	alice, bob          *user
	private, public     List
	privTask, pubTask   Task
	privPath, pubPath   string // /api/lists/{id}/
	privTPath, pubTPath string // /api/tasks/{id}/
}

func newFixture(t *testing.T, s *server) *fixture {
	t.Helper()
	f := &fixture{s: s, alice: s.register(t, "alice"), bob: s.register(t, "bob")}
	s.must(t, 201, "POST", "/api/lists/", f.alice, `{"name":"secret","public":false}`).decode(t, &f.private)
	s.must(t, 201, "POST", "/api/lists/", f.alice, `{"name":"shared","public":true}`).decode(t, &f.public)
	s.must(t, 201, "POST", "/api/tasks/", f.alice, fmt.Sprintf(`{"text":"hidden","list":%d}`, f.private.ID)).decode(t, &f.privTask)
	s.must(t, 201, "POST", "/api/tasks/", f.alice, fmt.Sprintf(`{"text":"Buy MILK","list":%d}`, f.public.ID)).decode(t, &f.pubTask)
	f.privPath = fmt.Sprintf("/api/lists/%d/", f.private.ID)
	f.pubPath = fmt.Sprintf("/api/lists/%d/", f.public.ID)
	f.privTPath = fmt.Sprintf("/api/tasks/%d/", f.privTask.ID)
	f.pubTPath = fmt.Sprintf("/api/tasks/%d/", f.pubTask.ID)
	return f
}

func TestLists(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testLists(t, s) })
}

func testLists(t *testing.T, s *server) {
	f := newFixture(t, s)
	alice, bob := f.alice, f.bob

	if f.private.OwnerID != alice.id || f.private.Public || f.private.Name != "secret" {
		t.Fatalf("created %+v", f.private)
	}
	want := fmt.Sprintf(`{"id":%d,"name":"secret","public":false,"owner":%d}`, f.private.ID, alice.id)
	if body := s.must(t, 200, "GET", f.privPath, alice, "").body; body != want {
		t.Errorf("GET: got %s, want %s", body, want)
	}

	// Who sees which lists.
	pub := s.must(t, 200, "GET", f.pubPath, nil, "").body
	priv := s.must(t, 200, "GET", f.privPath, alice, "").body
	for _, tc := range []struct {
		who  *user
		want string
	}{
		{nil, page(pub)},
		{bob, page(pub)},
		{alice, page(priv, pub)},
	} {
		if got := s.must(t, 200, "GET", "/api/lists/", tc.who, "").body; got != tc.want {
			t.Errorf("list as %v: got %s, want %s", tc.who, got, tc.want)
		}
	}

	// The owner is the creator, whatever the body says.
	var l List
	s.must(t, 201, "POST", "/api/lists/", bob, fmt.Sprintf(`{"name":"bob's","owner":%d}`, alice.id)).decode(t, &l)
	if l.OwnerID != bob.id || l.Public {
		t.Errorf("bob's list: %+v, want owner %d, private", l, bob.id)
	}

	for _, tc := range []struct {
		name         string
		who          *user
		method, path string
		body         string
		code         int
		want         string
	}{
		{"anonymous create", nil, "POST", "/api/lists/", `{"name":"x"}`, 401, "Authentication credentials were not provided."},
		{"invisible to anonymous", nil, "GET", f.privPath, "", 404, "Not found"},
		{"invisible to bob", bob, "GET", f.privPath, "", 404, "Not found"},
		{"missing", alice, "GET", "/api/lists/99999/", "", 404, "Not found"},
		{"not an id", alice, "GET", "/api/lists/abc/", "", 404, "Not found"},
		{"bob changes the private list", bob, "PATCH", f.privPath, `{"name":"mine"}`, 404, "Not found"},
		{"bob deletes the private list", bob, "DELETE", f.privPath, "", 404, "Not found"},
		{"bob changes the public list", bob, "PATCH", f.pubPath, `{"name":"mine"}`, 403, "permission"},
		{"bob replaces the public list", bob, "PUT", f.pubPath, `{"name":"mine","public":true}`, 403, "permission"},
		{"bob deletes the public list", bob, "DELETE", f.pubPath, "", 403, "permission"},
		{"anonymous changes the public list", nil, "PATCH", f.pubPath, `{"name":"mine"}`, 401, "Authentication credentials"},
		{"bad JSON", alice, "PATCH", f.pubPath, `{"name":`, 400, "JSON parse error"},
		{"wrong type", alice, "PATCH", f.pubPath, `{"public":"yes"}`, 400, `"public":["Must be a boolean`},
		{"blank name", alice, "PATCH", f.pubPath, `{"name":"  "}`, 400, `"name":["This field may not be blank."]`},
		{"long name", alice, "POST", "/api/lists/", `{"name":"` + strings.Repeat("n", 201) + `"}`, 400, `no more than 200 characters`},
		{"PUT without name", alice, "PUT", f.pubPath, `{"public":true}`, 400, `"name":["This field is required."]`},
		{"create without name", alice, "POST", "/api/lists/", `{}`, 400, `"name":["This field is required."]`},
		{"method", alice, "DELETE", "/api/lists/", "", 405, "not allowed"},
		{"owner renames", alice, "PATCH", f.pubPath, `{"name":"renamed"}`, 200, `"name":"renamed","public":true`},
		{"owner replaces", alice, "PUT", f.privPath, `{"name":"open"}`, 200, `"name":"open","public":false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do(t, tc.method, tc.path, tc.who.header(), tc.body)
			if res.code != tc.code || !strings.Contains(res.body, tc.want) {
				t.Errorf("got %d %s, want %d with %s", res.code, res.body, tc.code, tc.want)
			}
		})
	}
	// A body that is not JSON is refused before anything else.
	res := s.do(t, "POST", "/api/lists/", http.Header{"Authorization": {"Token " + alice.token}, "Content-Type": {"text/plain"}}, `{"name":"x"}`)
	if res.code != 415 {
		t.Errorf("text/plain create: got %d %s, want 415", res.code, res.body)
	}

	// Making a list private hides it from bob; deleting a list deletes
	// its tasks.
	s.must(t, 200, "PATCH", f.pubPath, alice, `{"public":false}`)
	s.must(t, 404, "GET", f.pubPath, bob, "")
	s.must(t, 404, "GET", f.pubTPath, bob, "")
	s.must(t, 204, "DELETE", f.pubPath, alice, "")
	s.must(t, 404, "GET", f.pubPath, alice, "")
	s.must(t, 404, "GET", f.pubTPath, alice, "")
}

func TestTasks(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testTasks(t, s) })
}

func testTasks(t *testing.T, s *server) {
	f := newFixture(t, s)
	alice, bob := f.alice, f.bob

	want := fmt.Sprintf(`{"id":%d,"text":"Buy MILK","done":false,"list":%d}`, f.pubTask.ID, f.public.ID)
	if body := s.must(t, 200, "GET", f.pubTPath, nil, "").body; body != want {
		t.Errorf("GET: got %s, want %s", body, want)
	}
	onPublic := fmt.Sprintf(`{"text":"anyone's","list":%d}`, f.public.ID)
	onPrivate := fmt.Sprintf(`{"text":"sneaky","list":%d}`, f.private.ID)
	toPrivate := fmt.Sprintf(`{"list":%d}`, f.private.ID)
	for _, tc := range []struct {
		name         string
		who          *user
		method, path string
		body         string
		code         int
		want         string
	}{
		{"anonymous adds to a public list", nil, "POST", "/api/tasks/", onPublic, 201, `"text":"anyone's","done":false`},
		{"bob adds to a public list", bob, "POST", "/api/tasks/", onPublic, 201, `"text":"anyone's"`},
		{"anonymous adds to a private list", nil, "POST", "/api/tasks/", onPrivate, 400, `"list":["Invalid pk`},
		{"bob adds to a private list", bob, "POST", "/api/tasks/", onPrivate, 400, `"list":["Invalid pk`},
		{"alice adds to her private list", alice, "POST", "/api/tasks/", onPrivate, 201, `"text":"sneaky"`},
		{"to a missing list", alice, "POST", "/api/tasks/", `{"text":"x","list":99999}`, 400, `"list":["Invalid pk \"99999\"`},
		{"without list", alice, "POST", "/api/tasks/", `{"text":"x"}`, 400, `"list":["This field is required."]`},
		{"without text", alice, "POST", "/api/tasks/", fmt.Sprintf(`{"list":%d}`, f.public.ID), 400, `"text":["This field is required."]`},
		{"blank text", alice, "POST", "/api/tasks/", fmt.Sprintf(`{"text":"","list":%d}`, f.public.ID), 400, `"text":["This field may not be blank."]`},
		{"negative list", alice, "POST", "/api/tasks/", `{"text":"x","list":-1}`, 400, `"list":["Must be an integer`},
		{"bad JSON", alice, "POST", "/api/tasks/", `{"text":"x",`, 400, "JSON parse error"},
		{"invisible to bob", bob, "GET", f.privTPath, "", 404, "Not found"},
		{"invisible to anonymous", nil, "GET", f.privTPath, "", 404, "Not found"},
		{"bob ticks a private task", bob, "PATCH", f.privTPath, `{"done":true}`, 404, "Not found"},
		{"bob deletes a private task", bob, "DELETE", f.privTPath, "", 404, "Not found"},
		{"bob moves a public task to a private list", bob, "PATCH", f.pubTPath, toPrivate, 400, `"list":["Invalid pk`},
		{"PUT without text", bob, "PUT", f.pubTPath, fmt.Sprintf(`{"list":%d}`, f.public.ID), 400, `"text":["This field is required."]`},
		{"anonymous ticks a public task", nil, "PATCH", f.pubTPath, `{"done":true}`, 200, `"done":true`},
		// PUT keeps the fields with defaults that it leaves out, as DRF does.
		{"bob replaces a public task", bob, "PUT", f.pubTPath, fmt.Sprintf(`{"text":"Buy MILK","list":%d}`, f.public.ID), 200, `"text":"Buy MILK","done":true`},
		{"method", bob, "PUT", "/api/tasks/", "", 405, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do(t, tc.method, tc.path, tc.who.header(), tc.body)
			if res.code != tc.code || !strings.Contains(res.body, tc.want) {
				t.Errorf("got %d %s, want %d with %s", res.code, res.body, tc.code, tc.want)
			}
		})
	}

	// Alice may move her public list's task to her private list: then
	// bob no longer sees it.
	s.must(t, 200, "PATCH", f.pubTPath, alice, toPrivate)
	s.must(t, 404, "GET", f.pubTPath, bob, "")
	s.must(t, 204, "DELETE", f.pubTPath, alice, "")
	s.must(t, 404, "GET", f.pubTPath, alice, "")
	// Anyone may delete a public list's task.
	var task Task
	s.must(t, 201, "POST", "/api/tasks/", alice, onPublic).decode(t, &task)
	s.must(t, 204, "DELETE", fmt.Sprintf("/api/tasks/%d/", task.ID), nil, "")
}

func TestTaskFilters(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testTaskFilters(t, s) })
}

func testTaskFilters(t *testing.T, s *server) {
	f := newFixture(t, s)
	alice, bob := f.alice, f.bob
	var extra, other Task
	s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"milkshake, 100%% done","done":true,"list":%d}`, f.public.ID)).decode(t, &extra)
	s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"oat milk","list":%d}`, f.private.ID)).decode(t, &other)

	ids := func(body string) string {
		var p struct{ Results []Task }
		response{body: body}.decode(t, &p)
		var out []string
		for _, task := range p.Results {
			out = append(out, fmt.Sprint(task.ID))
		}
		return strings.Join(out, ",")
	}
	id := func(ts ...Task) string {
		var out []string
		for _, task := range ts {
			out = append(out, fmt.Sprint(task.ID))
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		who   *user
		query string
		want  string
	}{
		{alice, "", id(f.privTask, f.pubTask, extra, other)},
		{bob, "", id(f.pubTask, extra)},
		{nil, "", id(f.pubTask, extra)},
		{alice, fmt.Sprintf("?list=%d", f.private.ID), id(f.privTask, other)},
		{bob, fmt.Sprintf("?list=%d", f.private.ID), ""},
		{alice, "?done=true", id(extra)},
		{alice, "?done=false", id(f.privTask, f.pubTask, other)},
		{alice, "?search=milk", id(f.pubTask, extra, other)},
		{bob, "?search=MILK", id(f.pubTask, extra)},
		{alice, "?search=%25", id(extra)}, // a literal %, not a wildcard
		{alice, "?search=_", ""},
		{alice, fmt.Sprintf("?search=milk&done=false&list=%d", f.public.ID), id(f.pubTask)},
		{alice, "?unknown=1", id(f.privTask, f.pubTask, extra, other)},
	} {
		if got := ids(s.must(t, 200, "GET", "/api/tasks/"+tc.query, tc.who, "").body); got != tc.want {
			t.Errorf("GET /api/tasks/%s as %v: got [%s], want [%s]", tc.query, tc.who, got, tc.want)
		}
	}
	for _, q := range []string{"?done=maybe", "?list=abc", "?list=-1"} {
		res := s.do(t, "GET", "/api/tasks/"+q, nil, "")
		if res.code != 400 || !strings.Contains(res.body, `"detail"`) {
			t.Errorf("GET /api/tasks/%s: got %d %s, want 400", q, res.code, res.body)
		}
	}
}

func TestPage(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testPage(t, s) })
}

func testPage(t *testing.T, s *server) {
	for _, tc := range []struct{ path, contentType, want string }{
		{"/", "text/html", "<html"},
		{"/app.js", "text/javascript", "/ws/subscribe/"},
		{"/lib/restlive-client/index.js", "text/javascript", "LiveClient"},
		{"/style.css", "text/css", "{"},
	} {
		res := s.do(t, "GET", tc.path, nil, "")
		if res.code != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), tc.contentType) || !strings.Contains(res.body, tc.want) {
			t.Errorf("GET %s: got %d %s, want 200 %s with %q", tc.path, res.code, res.header.Get("Content-Type"), tc.contentType, tc.want)
		}
	}
	if res := s.do(t, "GET", "/nothing-here", nil, ""); res.code != 404 {
		t.Errorf("GET /nothing-here: got %d", res.code)
	}
	if res := s.do(t, "POST", "/", nil, "{}"); res.code != 405 {
		t.Errorf("POST /: got %d", res.code)
	}
	// One log line per request, naming the user.
	alice := s.register(t, "alice")
	s.must(t, 200, "GET", "/api/lists/?x=1", alice, "")
	s.logs.waitFor(t, `msg=http method=GET path="/api/lists/?x=1" status=200`, 10*time.Second)
	s.logs.waitFor(t, `user=alice`, 10*time.Second)
}

// page is a list answer of one page holding instances.
func page(instances ...string) string {
	return fmt.Sprintf(`{"count":%d,"next":null,"previous":null,"results":[%s]}`, len(instances), strings.Join(instances, ","))
}
