package nats_test

import (
	"context"
	"log"
	"net/http"

	"github.com/restlive/restlive/layer/nats"
	"github.com/restlive/restlive/live"
)

// Each server process opens the layer on the shared NATS and gives it to
// its Router; the capture publishes to the same layer.
func Example() {
	ctx := context.Background()
	layer, err := nats.New(ctx, nats.Config{URL: "nats://127.0.0.1:4222"})
	if err != nil {
		log.Fatal(err) // layer/nats: connect to nats://127.0.0.1:4222: ...
	}
	defer layer.Close()
	router := live.NewRouter(live.Config{Layer: layer})
	http.Handle("/ws/", router)
}
