package instance

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tenPairs is a scenario on 5 nodes touching each of their 10 pairs: a loss and a rate one way, the other way
// cut off for the pairs of node1 (a partition of node1 from the others).
func tenPairs() []LinkFault {
	var faults []LinkFault
	for i := 1; i <= 5; i++ {
		for j := i + 1; j <= 5; j++ {
			from, to := fmt.Sprintf("node%d", i), fmt.Sprintf("node%d", j)
			faults = append(faults, LinkFault{From: from, To: to, Loss: 0.1, Rate: 10e6})
			if i == 1 {
				faults = append(faults, LinkFault{From: to, To: from, Drop: true})
			}
		}
	}
	return faults
}

// BenchmarkFaultsApply times applying and clearing the tenPairs scenario on 5 running nodes (target: median at
// most 200 ms each), through the driver's netfault helper (made before the timing starts).
func BenchmarkFaultsApply(b *testing.B) {
	d := newDriver(b, NetworkBridge, nil)
	session, _ := newFaultSession(b, d, 5)
	ctx := context.Background()
	if err := d.ClearFaults(ctx, session); err != nil { // makes the helper
		b.Fatal(err)
	}
	var apply, clear []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := d.SetFaults(ctx, session, tenPairs(), []byte("bench")); err != nil {
			b.Fatal(err)
		}
		apply = append(apply, time.Since(start))
		start = time.Now()
		if err := d.ClearFaults(ctx, session); err != nil {
			b.Fatal(err)
		}
		clear = append(clear, time.Since(start))
	}
	b.ReportMetric(float64(median(apply).Microseconds())/1000, "apply-ms")
	b.ReportMetric(float64(median(clear).Microseconds())/1000, "clear-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFaultsNoFaultPath measures node1 -> node2 of a session with no fault, in three states that alternate
// in one run: plain (no fault anywhere on the engine), cleared (this session had faults, cleared), and beside
// (another session has the tenPairs scenario in place, so every forwarded packet passes Sandlot's chains): ping's
// average round trip (200 at 10 ms) and a 100 MB TCP transfer (nc), as medians and ratios to plain.
func BenchmarkFaultsNoFaultPath(b *testing.B) {
	d := newDriver(b, NetworkBridge, nil)
	session, nodes := newFaultSession(b, d, 2)
	other, _ := newFaultSession(b, d, 5)
	ctx := context.Background()
	target := nodes[1].IP.String()
	measure := func() (rtt, mbps float64) {
		r, err := d.Exec(ctx, session, "node1", []string{"sh", "-c",
			"ping -q -c 200 -i 0.01 " + target + " | tail -1 | cut -d/ -f5"}, ExecOptions{})
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("ping: %v %s", err, r.Stderr)
		}
		rtt, _ = strconv.ParseFloat(strings.TrimSpace(string(r.Stdout)), 64)
		if _, err := d.Exec(ctx, session, "node2", []string{"sh", "-c", "nc -l 5001 >/dev/null"}, ExecOptions{Detach: true}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		r, err = d.Exec(ctx, session, "node1", []string{"sh", "-c", `s=$(date +%s%N)
dd if=/dev/zero bs=1M count=100 2>/dev/null | nc -N ` + target + ` 5001
e=$(date +%s%N); echo $(( (e - s) / 1000 ))`}, ExecOptions{})
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("transfer: %v %s", err, r.Stderr)
		}
		us, _ := strconv.ParseFloat(strings.TrimSpace(string(r.Stdout)), 64)
		return rtt, 100 * 8 / (us / 1e6)
	}
	type sample struct{ rtt, mbps []float64 }
	states := map[string]*sample{"plain": {}, "cleared": {}, "beside": {}}
	for b.Loop() {
		for _, state := range []string{"plain", "cleared", "beside"} {
			switch state {
			case "cleared":
				if err := d.SetFaults(ctx, session, []LinkFault{{From: "node1", To: "node2", Loss: 0.5, Rate: 1e6}}, nil); err != nil {
					b.Fatal(err)
				}
				if err := d.ClearFaults(ctx, session); err != nil {
					b.Fatal(err)
				}
			case "beside":
				if err := d.SetFaults(ctx, other, tenPairs(), nil); err != nil {
					b.Fatal(err)
				}
			}
			rtt, mbps := measure()
			states[state].rtt = append(states[state].rtt, rtt)
			states[state].mbps = append(states[state].mbps, mbps)
			if state == "beside" {
				if err := d.ClearFaults(ctx, other); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	med := func(v []float64) float64 { s := append([]float64(nil), v...); sort.Float64s(s); return s[len(s)/2] }
	plainRTT, plainMbps := med(states["plain"].rtt), med(states["plain"].mbps)
	b.ReportMetric(plainRTT, "plain-rtt-ms")
	b.ReportMetric(plainMbps, "plain-Mbit/s")
	for _, s := range []string{"cleared", "beside"} {
		b.ReportMetric(med(states[s].rtt)/plainRTT, s+"-rtt-x")
		b.ReportMetric(med(states[s].mbps)/plainMbps, s+"-Mbit/s-x")
	}
	b.ReportMetric(0, "ns/op")
}
