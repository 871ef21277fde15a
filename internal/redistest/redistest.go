// Package redistest gives tests a real, private redis-server.
package redistest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/internal/redisproc"
)

// New starts a redis-server of its own for one test and returns a client with a pool as large as sandlot serve
// uses; both end with the test.
func New(t testing.TB) *redis.Client {
	t.Helper()
	s, err := redisproc.Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.PoolSize = 128
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
