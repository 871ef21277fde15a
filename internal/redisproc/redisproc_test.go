package redisproc

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStartPersistStop(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Set(ctx, "k", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	s.Stop()

	s, err = Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	rdb = redis.NewClient(opts)
	defer rdb.Close()
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "kept" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
}

// Without redis-server installed the error says how to get it.
func TestMissingRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") || !strings.Contains(err.Error(), "--redis") {
		t.Fatalf("err = %v", err)
	}
}
