package tasks_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/tasks"
)

// A Go service submits an org structure and reads its progress. Workers
// (cmd/worker) create the departments; here none runs, so the import stays
// at its first step: the root and the workplace queued, the children
// waiting for the root's ID.
func ExampleImports_Submit() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: 2})
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)

	// A portal and key prefix of this run only, removed at the end; a real
	// service uses its portal's name and the default prefix ("").
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	portal, prefix := "example-"+hex.EncodeToString(suffix), "b24qexample:"+hex.EncodeToString(suffix)
	defer removeExampleKeys(ctx, rdb, portal, prefix)

	f, err := importer.Parse(importer.YAML, strings.NewReader(`
departments:
  - {key: sales, name: Sales, parent_id: 1}
  - {key: sales-eu, name: Sales EU, parent: sales}
  - {key: sales-us, name: Sales US, parent: sales}
workplaces:
  - {key: hr, title: HR, type_ids: [1]}
`))
	if err != nil {
		fmt.Println(err)
		return
	}

	imports := tasks.NewImports(rdb, client, prefix, nil)
	res, err := imports.Submit(ctx, portal, "org-2024", f) // "" derives the ID from the content
	if err != nil {
		fmt.Println(err) // an *importer.ValidationError lists every problem of the file
		return
	}
	// The first task reads the portal and adopts what exists there; it
	// then releases the rest to be created, parents first.
	fmt.Printf("import %s: %d items, reconciling with the portal first: %v\n", res.ID, res.Total, res.Reconciling)

	st, err := imports.Status(ctx, res.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := st.Counts
	fmt.Printf("created %d, pending %d, waiting %d, failed %d, done %v\n", c.Created, c.Pending, c.Waiting, c.Failed, st.Done)
	// Output:
	// import org-2024: 4 items, reconciling with the portal first: true
	// created 0, pending 2, waiting 2, failed 0, done false
}

func removeExampleKeys(ctx context.Context, rdb *redis.Client, portal, prefix string) {
	_ = asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(tasks.QueueName(portal), true)
	for _, pattern := range []string{prefix + ":*", "asynq:{" + tasks.QueueName(portal) + "}:*"} {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	}
}
