package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/session/netfault"
)

// NodeFaults applies network faults between a session's nodes, on the host side of their links (package
// instance). The note kept with a session's faults is its fault document, so that every process reads it back.
type NodeFaults interface {
	SetFaults(ctx context.Context, session string, faults []instance.LinkFault, note []byte) error
	Faults(ctx context.Context, session string) ([]byte, error)
	ClearFaults(ctx context.Context, session string) error
	FaultSupport() instance.FaultSupport
}

// faultState is what this process knows of the sessions it set faults for: when each next heals.
type faultState struct {
	mu sync.Mutex
	// locks make each read-change-apply of a session's picture one step in this process (a heal's timer and a PUT
	// would otherwise each apply what they read), by session.
	locks  map[string]*sync.Mutex
	timers map[string]*time.Timer // by session; nil: faulted, nothing to heal
}

// Network is a live session's fault picture; faults past their duration are no longer in it (and no longer in
// place: reading heals what a timer of a process that has ended did not).
func (s *Service) Network(ctx context.Context, id string) (netfault.Document, error) {
	defer s.lockFaults(id)()
	sess, err := s.live(ctx, id)
	if err != nil {
		return netfault.Document{}, err
	}
	stored, err := s.storedNetwork(ctx, id)
	if err != nil {
		return netfault.Document{}, err
	}
	names := nodeNames(sess)
	doc, _, err := netfault.Parse(stored, names, time.Now())
	if err != nil { // a node it names is gone (removed by another process, say): without its faults
		doc = withoutGone(stored, names)
		if _, _, err := netfault.Parse(doc, names, time.Now()); err != nil {
			doc.Partitions, doc.PartitionsDuration, doc.PartitionsExpireAt = nil, "", nil // a group too few
		}
		return s.applyNetwork(ctx, id, doc)
	}
	if !sameFaults(doc, stored) {
		return s.applyNetwork(ctx, id, doc) // healed meanwhile
	}
	return doc, nil
}

// withoutGone is doc without the faults of nodes not among names.
func withoutGone(doc netfault.Document, names []string) netfault.Document {
	have := map[string]bool{"*": true}
	for _, n := range names {
		have[n] = true
	}
	for _, n := range doc.Nodes(nil) {
		if !have[n] {
			doc = doc.Without(n)
		}
	}
	return doc
}

// SetNetwork replaces a live session's whole fault picture with doc, applied whole or not at all: a document
// the session's nodes or the limits do not fit is ErrInvalid (naming the field); a fault the kernel does not
// allow is instance.ErrKernelFeature (naming the feature). It returns the picture now in place.
func (s *Service) SetNetwork(ctx context.Context, id string, doc netfault.Document) (netfault.Document, error) {
	defer s.lockFaults(id)()
	sess, err := s.live(ctx, id)
	if err != nil {
		return netfault.Document{}, err
	}
	if _, _, err := netfault.Parse(doc, nodeNames(sess), time.Now()); err != nil {
		return netfault.Document{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s.applyNetwork(ctx, id, doc)
}

// ClearNetwork removes every fault of a live session.
func (s *Service) ClearNetwork(ctx context.Context, id string) error {
	defer s.lockFaults(id)()
	if _, err := s.live(ctx, id); err != nil {
		return err
	}
	s.stopHealing(id)
	return s.nodes.ClearFaults(ctx, id)
}

// applyNetwork puts doc in place for the session's nodes as they are now, and schedules its next healing.
func (s *Service) applyNetwork(ctx context.Context, id string, doc netfault.Document) (netfault.Document, error) {
	sess, err := s.live(ctx, id)
	if err != nil {
		return netfault.Document{}, err
	}
	kept, faults, err := netfault.Parse(doc, nodeNames(sess), time.Now())
	if err != nil {
		return netfault.Document{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if kept.Empty() {
		s.stopHealing(id)
		return kept, s.nodes.ClearFaults(ctx, id)
	}
	note, err := json.Marshal(kept)
	if err != nil {
		return netfault.Document{}, err
	}
	if err := s.nodes.SetFaults(ctx, id, faults, note); err != nil {
		return netfault.Document{}, err
	}
	s.healAt(id, kept.NextExpiry())
	return kept, nil
}

// storedNetwork is the fault document kept with the session's faults (empty if none).
func (s *Service) storedNetwork(ctx context.Context, id string) (netfault.Document, error) {
	note, err := s.nodes.Faults(ctx, id)
	if err != nil {
		return netfault.Document{}, err
	}
	doc := netfault.Document{Links: []netfault.Link{}, Partitions: [][]string{}}
	if len(note) == 0 {
		return doc, nil
	}
	if err := json.Unmarshal(note, &doc); err != nil {
		return netfault.Document{}, fmt.Errorf("network faults of session %s: %w", id, err)
	}
	return doc, nil
}

// refault applies the session's faults again after its nodes changed (one added, removed, started): a removed
// node's faults go, "*" takes in a new node, a started node has a new link. Failures are logged.
func (s *Service) refault(ctx context.Context, id, removed string) {
	if !s.faulted(id) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	defer s.lockFaults(id)()
	doc, err := s.storedNetwork(ctx, id)
	if err == nil {
		if removed != "" {
			doc = doc.Without(removed)
		}
		if sess, err := s.store.Get(ctx, id); err == nil {
			doc = withoutGone(doc, nodeNames(sess))
		}
		if _, err = s.applyNetwork(ctx, id, doc); errors.Is(err, ErrInvalid) && removed != "" {
			doc.Partitions, doc.PartitionsDuration, doc.PartitionsExpireAt = nil, "", nil // a group too few
			_, err = s.applyNetwork(ctx, id, doc)
		}
	}
	if err != nil {
		s.log.Warn("network faults after a node changed", "session", id, "err", err)
	}
}

// healAt makes the session's faults heal at t (none if zero), and marks the session as one with faults.
func (s *Service) healAt(id string, t time.Time) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.timers == nil {
		s.faults.timers = map[string]*time.Timer{}
	}
	if old := s.faults.timers[id]; old != nil {
		old.Stop()
	}
	if t.IsZero() {
		s.faults.timers[id] = nil // faulted, nothing to heal
		return
	}
	s.faults.timers[id] = time.AfterFunc(time.Until(t), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Network(ctx, id); err != nil && !errors.Is(err, ErrEnded) && !errors.Is(err, ErrNotFound) {
			s.log.Warn("heal network faults", "session", id, "err", err)
		}
	})
}

// lockFaults locks the session's picture in this process and returns the unlock.
func (s *Service) lockFaults(id string) func() {
	s.faults.mu.Lock()
	if s.faults.locks == nil {
		s.faults.locks = map[string]*sync.Mutex{}
	}
	l := s.faults.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		s.faults.locks[id] = l
	}
	s.faults.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// stopHealing forgets the session's faults.
func (s *Service) stopHealing(id string) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if t := s.faults.timers[id]; t != nil {
		t.Stop()
	}
	delete(s.faults.timers, id)
}

// forgetFaults forgets everything of an ended session's faults.
func (s *Service) forgetFaults(id string) {
	s.stopHealing(id)
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	delete(s.faults.locks, id)
}

// faulted says whether this process set faults for the session.
func (s *Service) faulted(id string) bool {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	_, ok := s.faults.timers[id]
	return ok
}

// FaultSupport says which faults the engine's kernel allows.
func (s *Service) FaultSupport() instance.FaultSupport { return s.nodes.FaultSupport() }

func nodeNames(sess Session) []string {
	names := make([]string, 0, len(sess.Instances))
	for _, in := range sess.Instances {
		names = append(names, in.Name)
	}
	return names
}

// sameFaults says whether two documents hold the same faults.
func sameFaults(a, b netfault.Document) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
