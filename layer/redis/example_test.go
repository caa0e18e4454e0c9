package redis_test

import (
	"context"
	"log"
	"net/http"

	"github.com/restlive/restlive/layer/redis"
	"github.com/restlive/restlive/live"
)

// Each server process opens the layer on the shared Redis and gives it to
// its Router; the capture publishes to the same layer.
func Example() {
	ctx := context.Background()
	layer, err := redis.New(ctx, redis.Config{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Fatal(err) // layer/redis: connect to redis://127.0.0.1:6379/0: ...
	}
	defer layer.Close()
	router := live.NewRouter(live.Config{Layer: layer})
	http.Handle("/ws/", router)
}
