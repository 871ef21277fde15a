package api

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session/memnodes"
	"github.com/sandlot/sandlot/session/workshop"
)

// idleRound is how long each round of BenchmarkDashboardIdle lets nothing happen.
const idleRound = 10 * time.Second

// BenchmarkDashboardIdle: a workshop of 50 attendees, each with a session (memnodes, a real redis-server), the
// instructor's dashboard open (its event stream, and its GET every 10 s as the page polls) and the 50 attendees'
// event streams open (their session pages); then nothing else happens for 10 s a round. Reports this process's
// CPU time (user + system, getrusage: the server with its reapers, and the test's own stream readers) as a
// percentage of one core, and redis-server's (INFO cpu). The goal: under 2 % of a core. The same workshop with
// nothing open is the plain path: what the reapers cost without the dashboard.
func BenchmarkDashboardIdle(b *testing.B) {
	b.Run("nothing-open", func(b *testing.B) { dashboardIdle(b, false) })
	b.Run("dashboard+50-attendee-streams", func(b *testing.B) { dashboardIdle(b, true) })
}

func dashboardIdle(b *testing.B, open bool) {
	const attendees = 50
	rdb := redistest.New(b)
	s := newServer(b, rdb, serverOpts{limits: quota.Limits{Capacity: 2 * attendees, JoinsPerClient: 2 * attendees},
		nodes: memnodes.New(netip.MustParseAddr("127.0.0.1"))})
	w := s.newWorkshop(map[string]any{"title": "Idle", "template": "1-node", "seats": attendees, "duration": "1h"})
	var streams []*sse
	for i := range attendees {
		j := s.join(w.Code, "P"+strconv.Itoa(i))
		if j.State != workshop.Active {
			b.Fatalf("attendee %d: %s", i, j.State)
		}
		if open {
			a := s.openEvents("/api/v1/attendee/events", j.AttendeeToken)
			a.waitFor(b, 5*time.Second, "state", func(string) bool { return true })
			streams = append(streams, a)
		}
	}
	if open {
		dashboard := s.openEvents("/api/v1/workshops/"+w.ID+"/events", w.InstructorToken)
		for range attendees {
			dashboard.waitFor(b, 5*time.Second, "attendee", func(string) bool { return true })
		}
		streams = append(streams, dashboard)
	}
	time.Sleep(time.Second) // what the joins set going (events, the reaper's first looks) settles

	var cpu, redisCPU, wall time.Duration
	b.ResetTimer()
	for range b.N {
		start, redisStart, at := processCPU(b), redisServerCPU(b, rdb), time.Now()
		time.Sleep(idleRound / 2)
		if open {
			s.mustCall(200, "GET", "/api/v1/workshops/"+w.ID, w.InstructorToken, nil, nil) // the page's poll
		}
		time.Sleep(idleRound / 2)
		cpu += processCPU(b) - start
		redisCPU += redisServerCPU(b, rdb) - redisStart
		wall += time.Since(at)
	}
	b.StopTimer()
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
	b.ReportMetric(100*redisCPU.Seconds()/wall.Seconds(), "%cpu-redis")
	for _, e := range streams {
		for drained := false; !drained; {
			select {
			case _, open := <-e.events:
				if !open {
					b.Fatal("a stream ended while idle")
				}
			default:
				drained = true
			}
		}
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisServerCPU is the CPU time redis-server has used, user and system, as it reports it (INFO cpu).
func redisServerCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %s", line)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
