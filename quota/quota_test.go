package quota

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/redistest"
)

func code(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Code
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestAdmission(t *testing.T) {
	ctx := context.Background()
	q, err := New(redistest.New(t), Limits{SessionsPerClient: 2, CreationsPerClient: 3, RateWindow: time.Hour,
		InstancesPerSession: 3, Capacity: 4})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"first session with 2 nodes", func() error { return admit(q, "ann", "s1", 2) }, ""},
		{"same session again is a no-op", func() error { return admit(q, "ann", "s1", 2) }, ""},
		{"second session, over capacity", func() error { return admit(q, "ann", "s2", 3) }, CodeOutOfCapacity},
		{"second session, too many nodes", func() error { return admit(q, "ann", "s2", 4) }, CodeInstanceQuota},
		{"second session", func() error { return admit(q, "ann", "s2", 0) }, ""},
		{"third concurrent session", func() error { return admit(q, "ann", "s3", 0) }, CodeTooManySessions},
		{"another client", func() error { return admit(q, "bob", "s4", 1) }, ""},
		{"node 3 of s1", func() error { return q.ReserveInstance(ctx, "s1", 0) }, ""},
		{"node 4 of s1: session quota", func() error { return q.ReserveInstance(ctx, "s1", 0) }, CodeInstanceQuota},
		{"node of s2: capacity", func() error { return q.ReserveInstance(ctx, "s2", 0) }, CodeOutOfCapacity},
		{"s1 ends", func() error { return q.EndSession(ctx, "ann", "s1") }, ""},
		{"node of s2 now fits", func() error { return q.ReserveInstance(ctx, "s2", 0) }, ""},
		{"node 2 of s2, whose own limit is 1", func() error { return q.ReserveInstance(ctx, "s2", 1) }, CodeInstanceQuota},
		{"ann's third start within the hour", func() error { return admit(q, "ann", "s5", 0) }, ""},
		{"ann's fourth start: rate", func() error { return admit(q, "ann", "s6", 0) }, CodeTooManySessions},
	}
	for _, s := range steps {
		if got := code(s.do()); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
	if err := q.EndSession(ctx, "ann", "s2"); err != nil {
		t.Fatal(err)
	}
	_, err = q.AdmitSession(ctx, "ann", "s7", 0)
	var r *Rejection
	if !errors.As(err, &r) || r.Code != CodeRateLimited || r.RetryAfter <= 50*time.Minute || r.RetryAfter > time.Hour {
		t.Fatalf("rate limit: %v (retry after %v)", err, r)
	}
	u, err := q.Usage(ctx, "bob", "s4")
	if err != nil || u.Instances != 1 || u.Running != 1 || u.Capacity != 4 || u.ClientSessions != 1 {
		t.Fatalf("usage %+v, %v", u, err)
	}
}

// 50 clients asking at once for one node each against a capacity of 5: exactly 5 get one.
func TestCapacityUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	q, err := New(redistest.New(t), Limits{Capacity: 5})
	if err != nil {
		t.Fatal(err)
	}
	var admitted, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch c := code(admit(q, fmt.Sprintf("c%d", i), fmt.Sprintf("s%d", i), 1)); c {
			case "":
				admitted.Add(1)
			case CodeOutOfCapacity:
				refused.Add(1)
			default:
				t.Errorf("unexpected %s", c)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 5 || refused.Load() != 45 {
		t.Fatalf("admitted %d, refused %d", admitted.Load(), refused.Load())
	}
	if u, _ := q.Usage(ctx, "c0", "s0"); u.Running != 5 {
		t.Fatalf("running %d", u.Running)
	}
}

func TestNewNeedsCapacity(t *testing.T) {
	if _, err := New(nil, Limits{}); err == nil {
		t.Fatal("zero capacity accepted")
	}
}

func admit(q *Quota, client, session string, nodes int) error {
	_, err := q.AdmitSession(context.Background(), client, session, nodes)
	return err
}

// What admission returns is what the client and session hold.
func TestAdmitReturnsUsage(t *testing.T) {
	q, err := New(redistest.New(t), Limits{Capacity: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := q.AdmitSession(ctx, "ann", "s1", 2); err != nil {
		t.Fatal(err)
	}
	u, err := q.AdmitSession(ctx, "ann", "s2", 3)
	if err != nil || u.ClientSessions != 2 || u.Running != 5 || u.Instances != 3 || u.Capacity != 10 {
		t.Fatalf("usage %+v, %v", u, err)
	}
}

// Sessions started from one listed origin are bounded together, across its readers, in the same decision as each
// reader's own limits; ending one gives its place back once, however often it is ended.
func TestSessionsPerOrigin(t *testing.T) {
	ctx := context.Background()
	q, err := New(redistest.New(t), Limits{SessionsPerClient: 2, SessionsPerOrigin: 3, Capacity: 100})
	if err != nil {
		t.Fatal(err)
	}
	from := func(client, origin, session string) func() error {
		return func() error { _, err := q.AdmitSessionFrom(ctx, client, origin, session, 0); return err }
	}
	docs, other := "https://docs.example.com", "https://other.example.com"
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"ann from docs", from("ann", docs, "s1"), ""},
		{"ann again from docs", from("ann", docs, "s2"), ""},
		{"ann's third: her own limit first", from("ann", docs, "s3"), CodeTooManySessions},
		{"bob from docs", from("bob", docs, "s4"), ""},
		{"the same session again is a no-op", from("bob", docs, "s4"), ""},
		{"cat from docs: the origin's limit", from("cat", docs, "s5"), CodeOriginQuota},
		{"cat from another origin", from("cat", other, "s6"), ""},
		{"cat with no origin", from("cat", "", "s7"), ""},
		{"s1 ends", func() error { return q.EndSession(ctx, "ann", "s1") }, ""},
		{"s1 ends again", func() error { return q.EndSession(ctx, "ann", "s1") }, ""},
		{"dan from docs now fits", from("dan", docs, "s8"), ""},
		{"eve from docs: full again", from("eve", docs, "s9"), CodeOriginQuota},
	}
	for _, s := range steps {
		if got := code(s.do()); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
	for origin, want := range map[string]int{docs: 3, other: 1} {
		if n, err := q.OriginSessions(ctx, origin); err != nil || n != want {
			t.Errorf("%s runs %d sessions (%v), want %d", origin, n, err, want)
		}
	}
	for _, s := range []struct{ client, id string }{{"ann", "s2"}, {"bob", "s4"}, {"dan", "s8"}, {"cat", "s6"}} {
		if err := q.EndSession(ctx, s.client, s.id); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.OriginSessions(ctx, docs); err != nil || n != 0 {
		t.Errorf("after every session ended, docs runs %d (%v)", n, err)
	}
}

// Many readers of one origin at once never together pass the origin's limit.
func TestSessionsPerOriginConcurrently(t *testing.T) {
	ctx := context.Background()
	q, err := New(redistest.New(t), Limits{SessionsPerOrigin: 7, Capacity: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.AdmitSessionFrom(ctx, fmt.Sprint("reader", i), "https://docs.example.com", fmt.Sprint("s", i), 0); err == nil {
				admitted.Add(1)
			} else if code(err) != CodeOriginQuota {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 7 {
		t.Fatalf("%d admitted, want 7", n)
	}
}
