package workshop

import (
	"time"

	"github.com/sandlot/sandlot/session"
)

// poolLead is how long before its start a workshop asks the warm pool for its seats: long enough for the pool to
// make them (a few seconds each, a few at once), not so long that idle nodes hold the host for nothing.
const poolLead = 10 * time.Minute

// poolDemand is what a live workshop asks of the warm pool now: a ready session for each seat nobody holds yet,
// from poolLead before its start until it ends (once locked, only for those who wait or queue). A workshop with
// images of its own asks nothing: pooled nodes were made without them.
func poolDemand(w Workshop, as []Attendee, now time.Time) map[string]int {
	if len(w.Images) > 0 || w.State == StateEnded || w.over(now) || (w.StartsAt != nil && w.StartsAt.Sub(now) > poolLead) {
		return nil
	}
	active, waiting := 0, 0
	for _, a := range as {
		switch a.State {
		case Active:
			active++
		case Waiting, Queued:
			waiting++
		}
	}
	need := w.Seats - active
	if w.Locked {
		need = min(need, waiting)
	}
	if need <= 0 {
		return nil
	}
	return map[string]int{w.Template: need}
}

// askPool tells the warm pool what the live workshops need, and withdraws what those no longer live asked for.
func (s *Service) askPool(demands map[string]map[string]int) {
	for id, sizes := range demands {
		s.sessions.SetPoolDemand(session.WorkshopDemand(id), sizes)
	}
	s.asked.Range(func(id, _ any) bool {
		if _, live := demands[id.(string)]; !live {
			s.sessions.SetPoolDemand(session.WorkshopDemand(id.(string)), nil)
			s.asked.Delete(id)
		}
		return true
	})
	for id := range demands {
		s.asked.Store(id, true)
	}
	s.heard()
}
