package terminal

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The ring always holds exactly the last cap bytes of everything written, at the right offsets.
func TestRingAgainstModel(t *testing.T) {
	for _, capacity := range []int{1, 7, 64, 1000} {
		r := newRing(capacity)
		var all []byte
		rng := rand.New(rand.NewPCG(1, uint64(capacity)))
		for step := 0; step < 2000; step++ {
			p := make([]byte, rng.IntN(3*capacity+2))
			for i := range p {
				p[i] = byte(rng.IntN(256))
			}
			r.write(p)
			all = append(all, p...)
			if r.end != uint64(len(all)) {
				t.Fatalf("cap %d: end %d, wrote %d", capacity, r.end, len(all))
			}
			keep := min(len(all), capacity)
			if r.start != uint64(len(all)-keep) {
				t.Fatalf("cap %d: start %d, want %d", capacity, r.start, len(all)-keep)
			}
			from := uint64(0)
			if len(all) > 0 {
				from = uint64(rng.IntN(len(all) + 1))
			}
			dst := make([]byte, rng.IntN(2*capacity+1)+1)
			n, at := r.read(from, dst)
			wantAt := max(from, r.start)
			wantN := min(len(dst), len(all)-int(wantAt))
			if at != wantAt || n != wantN || !bytes.Equal(dst[:n], all[wantAt:int(wantAt)+n]) {
				t.Fatalf("cap %d step %d: read(%d) = %d bytes at %d, want %d at %d", capacity, step, from, n, at, wantN, wantAt)
			}
		}
	}
}
