package holder

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestOutRingModel writes random pieces and checks the ring against the whole stream's tail.
func TestOutRingModel(t *testing.T) {
	for _, keep := range []int{1, 7, 64, 1000} {
		r := &outRing{keep: keep}
		var all []byte
		rng := rand.New(rand.NewPCG(uint64(keep), 1))
		for i := 0; i < 2000; i++ {
			p := make([]byte, rng.IntN(keep*3/2+2))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			r.write(p)
			all = append(all, p...)
			if r.end() != uint64(len(all)) {
				t.Fatalf("keep %d: end %d, wrote %d", keep, r.end(), len(all))
			}
			wantStart := max(0, len(all)-keep)
			if r.start != uint64(wantStart) {
				t.Fatalf("keep %d: start %d, want %d", keep, r.start, wantStart)
			}
			if len(r.buf) > 2*keep {
				t.Fatalf("keep %d: buffer of %d", keep, len(r.buf))
			}
			at := uint64(wantStart) + uint64(rng.IntN(keep+1))
			got, from := r.from(at, keep)
			if at > uint64(len(all)) {
				at = uint64(len(all))
			}
			if from != at || !bytes.Equal(got, all[at:]) {
				t.Fatalf("keep %d: from(%d) = %d bytes at %d", keep, at, len(got), from)
			}
		}
		if got, from := r.from(0, 3); r.start > 0 && from != r.start {
			t.Fatalf("keep %d: from(0) at %d (%d bytes), want the oldest %d", keep, from, len(got), r.start)
		}
	}
}
