package api

import (
	"net/netip"

	"context"
	"fmt"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/memnodes"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
)

// BenchmarkCreateSession: 50 clients at once start sessions without nodes over HTTP (1000 a round); reports the
// median and p99 latency of one creation. A session without nodes costs the engine nothing, so the nodes are
// in memory.
func BenchmarkCreateSession(b *testing.B) {
	rdb := redistest.New(b)
	s := newServer(b, rdb, serverOpts{limits: quota.Limits{Capacity: 10, SessionsPerClient: 1 << 20,
		CreationsPerClient: 1 << 20}, nodes: memnodes.New(netip.MustParseAddr("127.0.0.1"))})
	const clients, perRound = 50, 1000
	// Each of the 50 clients keeps its connection, as browsers do.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var lat []time.Duration
	var mu sync.Mutex
	for i := 0; i < b.N; i++ {
		work := make(chan struct{}, perRound)
		for range perRound {
			work <- struct{}{}
		}
		close(work)
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					start := time.Now()
					resp, err := hc.Post(s.URL+"/api/v1/sessions", "application/json", nil)
					took := time.Since(start)
					if err != nil || resp.StatusCode != http.StatusCreated {
						b.Errorf("create: %v %v", err, resp)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					lat = append(lat, took)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(ms(percentile(lat, 50)), "ms-p50")
	b.ReportMetric(ms(percentile(lat, 99)), "ms-p99")
	b.ReportMetric(histogramQuantile(b, s.metrics, 0.99)*1000, "ms-quota-check-p99-bound")
}

// histogramQuantile is the upper bound of the bucket that holds quantile q of the quota check histogram.
func histogramQuantile(b *testing.B, m *session.Metrics, q float64) float64 {
	h := metric(b, m, "sandlot_quota_check_seconds", "").GetHistogram()
	want := q * float64(h.GetSampleCount())
	for _, bucket := range h.GetBucket() {
		if float64(bucket.GetCumulativeCount()) >= want {
			return bucket.GetUpperBound()
		}
	}
	return math.Inf(1)
}

// BenchmarkQuotaCheck (a worst case): 50 goroutines asking quota to admit a session and giving it back, with no
// pause, about 36,000 admissions a second here; reports the p50 and p99 of one admission.
func BenchmarkQuotaCheck(b *testing.B) {
	q, err := quota.New(redistest.New(b), quota.Limits{Capacity: 1000, SessionsPerClient: 1 << 20, CreationsPerClient: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	var lat latencies
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		for c := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 40 {
					id := fmt.Sprintf("s%d-%d-%d", i, c, j)
					if !admitTimed(b, q, fmt.Sprint("client", c), id, &lat) {
						return
					}
					_ = q.EndSession(context.Background(), fmt.Sprint("client", c), id)
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(ms(percentile(lat.d, 50)), "ms-p50")
	b.ReportMetric(ms(percentile(lat.d, 99)), "ms-p99")
}

// BenchmarkSwarm3m2w: from the request to a formed swarm of 3 managers and 2 workers, through Sandlot and by hand
// with docker commands (ops/bench/swarm-by-hand), alternating in one run; reports both medians and the ratio.
func BenchmarkSwarm3m2w(b *testing.B) {
	s := newServer(b, redistest.New(b), serverOpts{})
	// By hand, the same nodes: the same seccomp profile and, where Sandlot's nodes have one, the same disk.
	profile := filepath.Join(b.TempDir(), "seccomp.json")
	if err := os.WriteFile(profile, []byte(driver(b).SeccompProfile()), 0o600); err != nil {
		b.Fatal(err)
	}
	handEnv := append(os.Environ(), "SECCOMP="+profile)
	if disk := driver(b).Limits().Disk; disk > 0 {
		handEnv = append(handEnv, fmt.Sprintf("DISK=%d", disk))
	}
	var ours, hand []time.Duration
	for i := 0; i < b.N; i++ {
		runOurs := func() {
			start := time.Now()
			c := s.create(map[string]string{"template": "swarm-3m2w"})
			ours = append(ours, time.Since(start))
			s.mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+c.ID, c.Token, nil, nil)
		}
		runHand := func() {
			label := "benchhand" + randomHex(4)
			start := time.Now()
			cmd := exec.Command("../../ops/bench/swarm-by-hand", label)
			cmd.Env = handEnv
			out, err := cmd.CombinedOutput()
			hand = append(hand, time.Since(start))
			if err := driver(b).DeleteSession(context.Background(), label); err != nil {
				b.Error(err)
			}
			if err != nil {
				b.Fatalf("by hand: %v: %s", err, out)
			}
		}
		if i%2 == 0 {
			runOurs()
			runHand()
		} else {
			runHand()
			runOurs()
		}
	}
	mo, mh := percentile(ours, 50), percentile(hand, 50)
	b.ReportMetric(ms(mo), "ms-sandlot-median")
	b.ReportMetric(ms(mh), "ms-by-hand-median")
	b.ReportMetric(float64(mo)/float64(mh), "ratio")
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkQuotaCheckPaced: 50 clients each asking for an admission every 20 ms (2,500 a second together, still
// far more than people start sessions), for one second a round; reports p50 and p99 of one admission. Unlike the
// closed loop above, this measures latency rather than how requests queue at saturation.
func BenchmarkQuotaCheckPaced(b *testing.B) {
	q, err := quota.New(redistest.New(b), quota.Limits{Capacity: 1 << 20, SessionsPerClient: 1 << 20, CreationsPerClient: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	var lat latencies
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		for c := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(c) * 20 * time.Millisecond / 50) // clients do not arrive in lockstep
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for j := range 50 {
					<-tick.C
					if !admitTimed(b, q, fmt.Sprint("client", c), fmt.Sprintf("p%d-%d-%d", i, c, j), &lat) {
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(ms(percentile(lat.d, 50)), "ms-p50")
	b.ReportMetric(ms(percentile(lat.d, 99)), "ms-p99")
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// admitTimed admits one session and records how long quota took.
func admitTimed(b *testing.B, q *quota.Quota, client, id string, l *latencies) bool {
	start := time.Now()
	if _, err := q.AdmitSession(context.Background(), client, id, 1); err != nil {
		b.Error(err)
		return false
	}
	l.add(time.Since(start))
	return true
}
