package holder

// outRing keeps the last keep bytes of the shell's output and their offsets. Its buffer grows with the output to
// at most twice keep: bytes are appended, and once the buffer is full the kept tail moves to its front, so that
// each byte is copied at most twice however the output arrives.
type outRing struct {
	keep  int
	buf   []byte // buf[off:] is the kept output
	off   int
	start uint64 // offset of buf[off]
}

// end is the offset after the newest byte.
func (r *outRing) end() uint64 { return r.start + uint64(len(r.buf)-r.off) }

func (r *outRing) write(p []byte) {
	if len(p) >= r.keep {
		r.start = r.end() + uint64(len(p)-r.keep)
		r.buf = append(r.buf[:0], p[len(p)-r.keep:]...)
		r.off = 0
		return
	}
	if len(r.buf)+len(p) > 2*r.keep {
		kept := r.buf[r.off:]
		n := copy(r.buf, kept)
		r.buf, r.off = r.buf[:n], 0
	}
	r.buf = append(r.buf, p...)
	if drop := len(r.buf) - r.off - r.keep; drop > 0 {
		r.off += drop
		r.start += uint64(drop)
	}
}

// from returns up to n kept bytes from offset at (or from the oldest kept, if at is older), and their offset.
func (r *outRing) from(at uint64, n int) ([]byte, uint64) {
	at = max(at, r.start)
	if at >= r.end() {
		return nil, r.end()
	}
	i := r.off + int(at-r.start)
	return r.buf[i:min(len(r.buf), i+n)], at
}
