package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24queue/b24queue/limiter"
	"github.com/redis/go-redis/v9"
)

func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: 1})
	defer rdb.Close()

	lim := limiter.New(rdb, limiter.Config{Rate: 2, Burst: 50},
		limiter.WithPrefix("example"), limiter.WithMaxWait(10*time.Second))
	defer lim.Close() // stops the pause subscription the first Wait starts
	lim.Configure("enterprise", limiter.Config{Rate: 5, Burst: 250})

	ctx := context.Background()
	err := lim.Wait(ctx, "default", "department.add")
	var blocked *limiter.BlockedError
	var delayed *limiter.DelayError
	switch {
	case errors.As(err, &blocked):
		fmt.Println("park until the block ends")
	case errors.As(err, &delayed):
		fmt.Println("park for", delayed.Delay)
	case err != nil:
		fmt.Println("retry later:", err) // e.g. Redis unreachable
	default:
		fmt.Println("send the request now")
		// ... and on QUERY_LIMIT_EXCEEDED: lim.Throttled(ctx, "default")
		// on OPERATION_TIME_LIMIT: lim.Block(ctx, "default", "department.add", resetAt)
		// on success: lim.Observe(ctx, "default", "department.add", operating, resetAt)
	}
}

func ExampleConfig_Validate() {
	cfg := limiter.Config{Rate: 2, Burst: -1, MinRate: 3}.WithDefaults()
	fmt.Println(cfg.Validate())
	// Output:
	// limiter config: Burst = -1: must be >= 1
	// limiter config: MinRate = 3: must be <= Rate (2)
}
