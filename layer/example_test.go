package layer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/restlive/restlive/layer"
	"github.com/restlive/restlive/layer/redis"
)

// A layer's Stats tell whether its broker connection is up: a readiness
// check refuses traffic while it is not. (Package metrics exports them.)
func ExampleStats() {
	l, err := redis.New(context.Background(), redis.Config{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Print(err) // no server at this address here
		return
	}
	defer l.Close()
	var st layer.Stats = l.Stats()
	fmt.Println(st.Connected, st.Reconnects)
}
