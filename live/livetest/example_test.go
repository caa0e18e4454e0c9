package livetest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"testing"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// greetings is a view over a fixed set of instances: enough to show how a
// test talks to a router. (Package gormlive builds views from GORM models.)
type greetings struct{}

func (greetings) Spec() live.Spec { return live.Spec{Model: "app.Greeting"} }

func (greetings) Parse(field, value string) (live.Value, error) {
	n, err := strconv.Atoi(value)
	return live.Value{Canonical: strconv.Itoa(n), JSON: json.RawMessage(strconv.Itoa(n))}, err
}

func (greetings) Subscribe(_ context.Context, req *live.Request) (live.Scope, error) {
	return greeting{who: req.UserID, id: req.Value}, nil
}

type greeting struct{ who, id string }

func (g greeting) Key() string { return g.who }
func (g greeting) Members(ctx context.Context) ([]live.Instance, error) {
	return g.Fetch(ctx, []string{g.id})
}
func (g greeting) Fetch(_ context.Context, pks []string) ([]live.Instance, error) {
	var out []live.Instance
	for _, pk := range pks {
		if pk == g.id {
			data, _ := json.Marshal(map[string]string{"id": pk, "text": "hello, " + g.who})
			out = append(out, live.Instance{PK: pk, ID: json.RawMessage(`{"id":` + pk + `}`), Data: data})
		}
	}
	return out, nil
}

// A test connects to the router in-process, as a logged-in user, sends a
// subscribe, receives the snapshot and then a broadcast of a change.
func ExampleConnect() {
	t := &testing.T{} // in a test, the test's t
	router := live.NewRouter(live.Config{
		Authenticate: func(r *http.Request) (live.Identity, error) {
			if name := r.Header.Get("Authorization"); name == "Token alice" {
				return live.Identity{User: "alice", ID: "alice"}, nil
			}
			return live.Identity{}, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	router.Register(greetings{})
	defer router.Close()

	c := livetest.Connect(t, router, &livetest.Options{Header: livetest.TokenHeader("Token", "alice")})
	defer c.Close()
	c.Send(map[string]any{"request_id": 1, "model": "app.Greeting", "value": 7, "snapshot": true})
	fmt.Println(c.Receive()["instances"])
	fmt.Println(c.Receive()["type"])
	router.Layer().Publish(context.Background(), []live.Change{{Model: "app.Greeting", PK: "7", Op: live.OpDelete}})
	m := c.Receive()
	fmt.Println(m["action"], m["instance"])
	c.ReceiveNothing()
	// Output:
	// [map[id:7 text:hello, alice]]
	// subscribed
	// DELETED map[id:7]
}
