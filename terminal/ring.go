package terminal

// ring keeps the last cap bytes of an output stream with their offsets. It grows as output arrives, so an idle
// terminal costs little, and never holds more than cap bytes.
type ring struct {
	cap   int
	buf   []byte // len(buf) <= cap; the oldest kept byte is at start of the logical ring
	head  int    // index in buf of the oldest kept byte, once buf is full
	start uint64 // offset of the oldest kept byte
	end   uint64 // offset after the newest byte
}

func newRing(capacity int) *ring { return &ring{cap: capacity} }

// write appends p, dropping the oldest bytes beyond capacity.
func (r *ring) write(p []byte) {
	r.end += uint64(len(p))
	if len(p) >= r.cap {
		p = p[len(p)-r.cap:]
		r.buf = append(r.buf[:0], p...)
		r.head = 0
		r.start = r.end - uint64(len(p))
		return
	}
	// Until the buffer is full it only grows (head stays 0); then it wraps.
	if n := min(r.cap-len(r.buf), len(p)); n > 0 {
		r.buf = append(r.buf, p[:n]...)
		p = p[n:]
	}
	for len(p) > 0 {
		n := copy(r.buf[r.head:], p)
		p = p[n:]
		r.head = (r.head + n) % len(r.buf)
	}
	r.start = r.end - uint64(len(r.buf))
}

// read copies up to len(dst) bytes from offset from into dst. It returns how many, and the offset it actually read
// from: from itself, or the oldest kept offset when from is older than that (the caller lost the bytes between).
func (r *ring) read(from uint64, dst []byte) (n int, at uint64) {
	if from < r.start {
		from = r.start
	}
	if from >= r.end {
		return 0, r.end
	}
	avail := int(r.end - from)
	want := min(avail, len(dst))
	pos := (r.head + int(from-r.start)) % len(r.buf) // where offset from is in buf
	n = copy(dst[:want], r.buf[pos:])
	if n < want {
		n += copy(dst[n:want], r.buf[:want-n])
	}
	return n, from
}
