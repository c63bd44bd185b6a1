package activation_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/unitkit/unitkit/activation"
)

// A complete instance: under systemd it serves the socket it was handed,
// elsewhere it listens on $LISTEN_ADDR, $PORT or :8080.
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	warmup := func(ctx context.Context) error {
		return nil // fill caches, connect to the database, ...
	}
	if err := activation.Serve(context.Background(), mux, activation.WithWarmup(warmup)); err != nil {
		log.Fatal(err)
	}
}

// Instance gives access to the instance's name, logger and counters before
// serving.
func ExampleNew() {
	inst, err := activation.New(activation.WithHealthCheck("database", func(ctx context.Context) error {
		return nil // e.g. db.PingContext(ctx)
	}))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		inst.Logger().InfoContext(r.Context(), "hello", "request_id", activation.RequestID(r.Context()))
		w.Header().Set("X-Instance", inst.Name())
	})
	if err := inst.Serve(context.Background(), mux); err != nil {
		log.Fatal(err)
	}
}
