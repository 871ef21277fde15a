package workshop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sandlot/sandlot/session"
)

// The instructor's demo: a session of the workshop's template that the instructor drives and every attendee may
// watch read-only from their page. One per workshop at a time; it ends with the workshop.

// Demo is the instructor's demo session and its token (session scope: for the instructor only).
type Demo struct {
	SessionID string    `json:"session_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// DemoLink is what an attendee is given to watch the demo: a viewer token for its terminals.
type DemoLink struct {
	SessionID   string `json:"session_id"`
	ViewerToken string `json:"viewer_token"`
}

// StartDemo gives the instructor of workshop id their demo session: the live one it has, or a new one (from the
// warm pool when it holds one). It counts against the host's capacity, not against the seats.
func (s *Service) StartDemo(ctx context.Context, id string) (Demo, error) {
	for range 2 { // another call may set one between our look and our set: then it is that one
		w, err := s.store.Workshop(ctx, id)
		if err != nil {
			return Demo{}, err
		}
		if w.State == StateEnded || w.over(time.Now()) {
			return Demo{}, ErrOver
		}
		if d, ok := s.liveDemo(ctx, w); ok {
			return d, nil
		}
		created, err := s.sessions.Create(ctx, session.CreateRequest{Template: w.Template, Workshop: w.ID,
			Duration: s.sessionDuration(w, time.Now()), Images: w.Images})
		if err != nil {
			return Demo{}, err
		}
		ok, err := s.store.SetDemo(ctx, id, w.DemoSession, created.Session.ID)
		if err != nil || !ok {
			s.endDemo(ctx, created.Session.ID, "the workshop got another demo meanwhile")
			if err != nil {
				return Demo{}, err
			}
			continue
		}
		s.log.Info("workshop demo started", "workshop", id, "session", created.Session.ID)
		if w, err := s.store.Workshop(ctx, id); err == nil {
			s.publish(ctx, id, "", KindWorkshop, w)
		}
		return Demo{SessionID: created.Session.ID, Token: created.Token, ExpiresAt: created.Session.ExpiresAt}, nil
	}
	return Demo{}, fmt.Errorf("%w: the demo of workshop %s changed twice while it was being started", session.ErrConflict, id)
}

// liveDemo is the workshop's demo session with a new token for the instructor, if it has one that is live.
func (s *Service) liveDemo(ctx context.Context, w Workshop) (Demo, bool) {
	if w.DemoSession == "" {
		return Demo{}, false
	}
	sess, err := s.sessions.Stored(ctx, w.DemoSession)
	if err != nil || sess.State == session.StateEnded {
		return Demo{}, false
	}
	token, err := s.sessions.Issue(session.Grant{Scope: session.ScopeSession, Session: sess.ID, Expires: sess.MaxExpiresAt})
	if err != nil {
		return Demo{}, false
	}
	return Demo{SessionID: sess.ID, Token: token, ExpiresAt: sess.ExpiresAt}, true
}

// demoLink is what an attendee of w is given to watch its live demo, if there is one.
func (s *Service) demoLink(ctx context.Context, w Workshop) *DemoLink {
	if w.DemoSession == "" {
		return nil
	}
	sess, err := s.sessions.Stored(ctx, w.DemoSession)
	if err != nil || sess.State == session.StateEnded {
		return nil
	}
	token, err := s.sessions.Issue(session.Grant{Scope: session.ScopeViewer, Session: sess.ID, Expires: sess.MaxExpiresAt})
	if err != nil {
		return nil
	}
	return &DemoLink{SessionID: sess.ID, ViewerToken: token}
}

// endDemo ends a demo session, for why.
func (s *Service) endDemo(ctx context.Context, id, why string) {
	reason := session.EndWorkshopEnded
	if _, err := s.sessions.End(context.WithoutCancel(ctx), id, reason, why); err != nil && !errors.Is(err, session.ErrEnded) {
		s.log.Warn("workshop: end a demo session", "session", id, "err", err)
	}
}
