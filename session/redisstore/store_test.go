package redisstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/session"
)

// A session's life in the store: made starting with a setup lease, activated, extended (record and deadline
// list together), ended exactly once however many ask, gone from every list but its record's 24 h.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.New(t)
	s := New(rdb, 24*time.Hour)
	now := time.Now().UTC()
	sess := session.Session{ID: "s1", State: session.StateStarting, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		MaxExpiresAt: now.Add(2 * time.Hour), MaxInstances: 5, Client: "c"}
	if err := s.Create(ctx, sess, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Extend(ctx, "nosuch", now); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("extend a missing session: %v", err)
	}
	if err := s.Activate(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, "s1"); !errors.Is(err, session.ErrConflict) {
		t.Errorf("activate an active session: %v", err)
	}
	if got, err := s.Get(ctx, "s1"); err != nil || got.State != session.StateActive {
		t.Fatalf("after activate: %+v, %v", got, err)
	}
	if rdb.SIsMember(ctx, keyStarting, "s1").Val() {
		t.Error("an active session is still on the list of setups")
	}
	to := now.Add(90 * time.Minute)
	if err := s.Extend(ctx, "s1", to); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, "s1")
	if !got.ExpiresAt.Equal(to.Truncate(time.Nanosecond)) {
		t.Errorf("expires at %s, want %s", got.ExpiresAt, to)
	}
	if due, _ := s.Due(ctx, now.Add(80*time.Minute), 10); slices.Contains(due, "s1") {
		t.Error("the reaper's deadline did not move with the record's")
	}
	if due, _ := s.Due(ctx, now.Add(91*time.Minute), 10); !slices.Contains(due, "s1") {
		t.Error("the moved deadline is not due after it")
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	ended := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := s.ClaimEnd(ctx, "s1", session.EndDeleted, "", time.Now().Add(time.Minute)); err == nil && ok {
				mu.Lock()
				ended++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ended != 1 {
		t.Fatalf("%d of 10 callers ended the session", ended)
	}
	if err := s.FinishEnd(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Extend(ctx, "s1", to); !errors.Is(err, session.ErrEnded) {
		t.Errorf("extend an ended session: %v", err)
	}
	if live, _ := s.IsLive(ctx, "s1"); live {
		t.Error("an ended session is live")
	}
	if ttl := rdb.PTTL(ctx, keyRecord("s1")).Val(); ttl <= 0 || ttl > 24*time.Hour {
		t.Errorf("the ended record's ttl is %s", ttl)
	}
}

// Node names: the lowest free one, unless the hostname asked for is itself a free node name (what PWD's SDK asks
// for its terminals, two at once); a hostname that only looks like one is not a name.
func TestAllocateName(t *testing.T) {
	ctx := context.Background()
	s := New(redistest.New(t), 24*time.Hour)
	now := time.Now().UTC()
	if err := s.Create(ctx, session.Session{ID: "s1", State: session.StateActive, CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), MaxExpiresAt: now.Add(time.Hour), MaxInstances: 5}, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ hostname, want string }{
		{"node2", "node2"}, // asked for, free
		{"", "node1"},      // the lowest free
		{"node2", "node3"}, // taken: the lowest free (the hostname is still node2's to have)
		{"web", "node4"},
		{"node05", "node5"}, {"node0", "node6"}, {"node51", "node7"}, {"node-1", "node8"},
		{"node9", "node9"},
	} {
		if got, err := s.AllocateName(ctx, "s1", c.hostname); err != nil || got != c.want {
			t.Errorf("a node with hostname %q is named %q (%v), want %q", c.hostname, got, err, c.want)
		}
	}
	if _, err := s.AllocateName(ctx, "nosuch", "node1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("a name in a missing session: %v", err)
	}
}
