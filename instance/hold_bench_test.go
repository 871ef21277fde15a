package instance

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkOpenShell: opening a terminal's shell until its first output, held (HoldTTY: a detached exec of the
// holder, then its socket) against today's (OpenTTY: the supervisor's exec and short way), interleaved in one run;
// the first held shell of a node also copies the holder in (reported apart). Also the memory of one idle holder:
// PSS and private, from smaps_rollup.
func BenchmarkOpenShell(b *testing.B) {
	d, session := heldSession(b)
	ctx := testContext(b)
	first := time.Now()
	h, _, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 1})
	if err != nil {
		b.Fatal(err)
	}
	if _, kept, _ := h.Replay(); len(kept) == 0 {
		if _, err := h.Read(make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
	}
	copied := time.Since(first)
	mem := sh(b, d, session, "node1", `p=$(pgrep -f '/usr/local/lib/sandlot/holde[r]-' | head -1); grep -E '^(Pss|Private_Clean|Private_Dirty):' /proc/$p/smaps_rollup`)
	h.Close()
	var held, today []time.Duration
	buf := make([]byte, 1)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		h, _, err := d.HoldTTY(ctx, session, "node1", HoldOptions{Slot: 2 + i%50})
		if err != nil {
			b.Fatal(err)
		}
		if _, kept, _ := h.Replay(); len(kept) == 0 {
			if _, err := h.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
		held = append(held, time.Since(start))
		h.Close()

		start = time.Now()
		tty, err := d.OpenTTY(ctx, session, "node1", TTYOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAtLeast(tty, buf, 1); err != nil {
			b.Fatal(err)
		}
		today = append(today, time.Since(start))
		tty.Close()
	}
	b.ReportMetric(ms(median(held)), "ms-held")
	b.ReportMetric(ms(median(today)), "ms-today")
	b.ReportMetric(float64(median(held))/float64(median(today)), "ratio-held/today")
	b.ReportMetric(ms(copied), "ms-first-held-with-copy")
	kib := map[string]float64{}
	for _, line := range strings.Split(mem, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			n, _ := strconv.ParseFloat(f[1], 64)
			kib[strings.TrimSuffix(f[0], ":")] += n
		}
	}
	b.ReportMetric(kib["Pss"]/1024, "MiB-holder-pss")
	b.ReportMetric((kib["Private_Clean"]+kib["Private_Dirty"])/1024, "MiB-holder-private")
}
