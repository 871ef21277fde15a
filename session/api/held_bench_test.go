package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/redistest"
	"github.com/sandlot/sandlot/internal/testengine"
	"github.com/sandlot/sandlot/session"
)

// BenchmarkKeystrokeEchoHeld: keystroke echo through a held shell (sandlot-holder in the node, docs/decisions/0027)
// against today's terminal (the supervisor's short way) and the raw docker exec stream, interleaved keystroke by
// keystroke in one run, each on a node of its own server (the two servers share Redis, so neither collects the
// other's nodes).
func BenchmarkKeystrokeEchoHeld(b *testing.B) {
	testengine.Skip(b)
	rdb := redistest.New(b)
	short := newServer(b, rdb, serverOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hd, err := instance.New(ctx, instance.Config{Network: instance.NetworkBridge, Owner: testOwner,
		Holder: testengine.Holder(b), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hd.Close() })
	held := newServer(b, rdb, serverOpts{nodes: session.EngineNodes(hd)})
	cs, ch := short.create(nil), held.create(nil)
	short.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+cs.ID+"/instances", cs.Token, nil, nil)
	held.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+ch.ID+"/instances", ch.Token, nil, nil)
	const script = "stty raw -echo; echo READY-$((6*7)); exec cat"
	raw := rawCat(b, cs, script)
	waitText(b, raw, "READY-42")
	wsShort := wsTerminal(b, short, cs, 1, script)
	wsHeld := wsTerminal(b, held, ch, 1, script)

	const rounds = 2000
	var viaRaw, viaShort, viaHeld []time.Duration
	rawOnce, shortOnce, heldOnce := rawEcho(b, raw), wsEcho(b, wsShort), wsEcho(b, wsHeld)
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			// Which goes first turns with each round.
			steps := []func(){
				func() { viaRaw = append(viaRaw, rawOnce()) },
				func() { viaShort = append(viaShort, shortOnce()) },
				func() { viaHeld = append(viaHeld, heldOnce()) },
			}
			for k := range steps {
				steps[(r+k)%3]()
			}
		}
	}
	b.ReportMetric(us(percentile(viaHeld, 50)), "us-held-p50")
	b.ReportMetric(us(percentile(viaShort, 50)), "us-today-p50")
	b.ReportMetric(us(percentile(viaRaw, 50)), "us-raw-p50")
	b.ReportMetric(us(percentile(viaHeld, 99)), "us-held-p99")
	b.ReportMetric(us(percentile(viaShort, 99)), "us-today-p99")
	b.ReportMetric(float64(percentile(viaHeld, 50))/float64(percentile(viaShort, 50)), "ratio-held/today-p50")
	b.ReportMetric(float64(percentile(viaHeld, 50))/float64(percentile(viaRaw, 50)), "ratio-held/raw-p50")
	b.ReportMetric(float64(percentile(viaShort, 50))/float64(percentile(viaRaw, 50)), "ratio-today/raw-p50")
}
