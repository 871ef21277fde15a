package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/workshop"
)

type createWorkshopRequest struct {
	Title    string     `json:"title"`
	Template string     `json:"template"`
	Seats    int        `json:"seats"`
	Duration string     `json:"duration"`
	StartsAt *time.Time `json:"starts_at"`
	EndsAt   *time.Time `json:"ends_at"`
	Images   []string   `json:"images"`
}

// createdWorkshop is a new workshop as its creator sees it: the only answer with the instructor's token.
type createdWorkshop struct {
	workshop.Workshop
	JoinURL         string `json:"join_url"`
	InstructorURL   string `json:"instructor_url"`
	InstructorToken string `json:"instructor_token"`
}

// workshopView is a workshop as listings show it: with its join link.
type workshopView struct {
	workshop.Workshop
	JoinURL string `json:"join_url"`
}

func (a *api) createWorkshop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req createWorkshopRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		d, err := parseDuration(req.Duration, true)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		c, err := a.ws.Create(r.Context(), workshop.CreateRequest{Title: req.Title, Template: req.Template,
			Seats: req.Seats, Duration: d, StartsAt: req.StartsAt, EndsAt: req.EndsAt, Images: req.Images})
		if err != nil {
			fail(w, a.log, err)
			return
		}
		a.preloadForWorkshop(c.Workshop)
		respond(w, http.StatusCreated, createdWorkshop{Workshop: c.Workshop, JoinURL: a.absolute(r, c.JoinPath),
			InstructorURL: a.absolute(r, c.InstructorPath), InstructorToken: c.InstructorToken})
	})
}

// workshopPreloadTimeout bounds the pull of a workshop's images into the cache.
const workshopPreloadTimeout = 30 * time.Minute

// preloadForWorkshop puts a new workshop's images into the image cache in the background (what is there already is
// not fetched again), so that its attendees' nodes pull them from the host; a failure is logged, and a node then
// pulls what it can as it is made.
func (a *api) preloadForWorkshop(w workshop.Workshop) {
	if len(w.Images) == 0 || a.cfg.Images == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), workshopPreloadTimeout)
		defer cancel()
		if err := a.cfg.Images.Preload(ctx, w.Images, nil); err != nil {
			a.log.Warn("image cache: preload a workshop's images", "workshop", w.ID, "images", w.Images, "err", err)
			return
		}
		a.log.Info("image cache: a workshop's images are in", "workshop", w.ID, "images", w.Images)
	}()
}

func (a *api) listWorkshops() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := a.ws.List(r.Context())
		if err != nil {
			fail(w, a.log, err)
			return
		}
		out := []workshopView{}
		for _, ws := range list {
			out = append(out, workshopView{Workshop: ws, JoinURL: a.absolute(r, "/w/"+ws.Code)})
		}
		respond(w, http.StatusOK, map[string]any{"workshops": out})
	})
}

func (a *api) getWorkshop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := a.ws.Detail(r.Context(), r.PathValue("id"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, d)
	})
}

type lockRequest struct {
	Locked bool `json:"locked"`
}

type seatsRequest struct {
	Seats int `json:"seats"`
}

type broadcastRequest struct {
	Text string `json:"text"`
}

type workshopExtendRequest struct {
	Duration string `json:"duration"`
	Attendee string `json:"attendee"`
}

type workshopEndRequest struct {
	Attendee string `json:"attendee"`
}

func (a *api) lockWorkshop() http.Handler {
	return workshopChange(a, func(ctx context.Context, id string, req lockRequest) (any, error) {
		w, err := a.ws.Lock(ctx, id, req.Locked)
		return w, err
	})
}

// startDemo answers 201 with the instructor's demo session, started now or the live one.
func (a *api) startDemo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{}
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		d, err := a.ws.StartDemo(r.Context(), r.PathValue("id"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusCreated, d)
	})
}

func (a *api) setSeats() http.Handler {
	return workshopChange(a, func(ctx context.Context, id string, req seatsRequest) (any, error) {
		w, err := a.ws.SetSeats(ctx, id, req.Seats)
		return w, err
	})
}

func (a *api) broadcast() http.Handler {
	return workshopChange(a, func(ctx context.Context, id string, req broadcastRequest) (any, error) {
		m, err := a.ws.Broadcast(ctx, id, req.Text)
		return m, err
	})
}

func (a *api) extendWorkshop() http.Handler {
	return workshopChange(a, func(ctx context.Context, id string, req workshopExtendRequest) (any, error) {
		d, err := parseDuration(req.Duration, false)
		if err != nil {
			return nil, err
		}
		det, err := a.ws.Extend(ctx, id, d, req.Attendee)
		return det, err
	})
}

func (a *api) endWorkshop() http.Handler {
	return workshopChange(a, func(ctx context.Context, id string, req workshopEndRequest) (any, error) {
		det, err := a.ws.End(ctx, id, req.Attendee)
		return det, err
	})
}

// workshopChange is a handler that decodes a Req and answers what do returns for the workshop in the path.
func workshopChange[Req any](a *api, do func(ctx context.Context, id string, req Req) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		out, err := do(r.Context(), r.PathValue("id"), req)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, out)
	})
}

func (a *api) attendance() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, err := a.ws.Get(r.Context(), id); err != nil {
			fail(w, a.log, err)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="attendance-`+id+`.csv"`)
		if err := a.ws.Attendance(r.Context(), id, w); err != nil {
			a.log.Warn("write attendance", "workshop", id, "err", err)
		}
	})
}

func (a *api) lookupWorkshop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.ws.Lookup(r.Context(), r.PathValue("code"), a.clientIP(r))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, p)
	})
}

type joinRequest struct {
	Name string `json:"name"`
}

// joined is a new attendee: their state, token and personal link (which brings them back from any browser).
type joined struct {
	workshop.Joined
	PersonalURL string `json:"personal_url"`
}

func (a *api) joinWorkshop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req joinRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		j, err := a.ws.Join(r.Context(), r.PathValue("code"), req.Name, a.clientIP(r))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusCreated, joined{Joined: j, PersonalURL: a.absolute(r, j.PersonalPath)})
	})
}

func (a *api) getAttendee() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if q := r.URL.Query().Get("since"); q != "" {
			t, err := time.Parse(time.RFC3339Nano, q)
			if err != nil {
				fail(w, a.log, fmt.Errorf("%w: since %q (an RFC 3339 time)", session.ErrInvalid, q))
				return
			}
			since = t
		}
		g := grantOf(r.Context())
		a.ws.Touch(r.Context(), g.Workshop, g.Attendee)
		v, err := a.ws.View(r.Context(), g.Workshop, g.Attendee, since)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, v)
	})
}

// parseDuration reads a duration like "2h"; "" is 0 when optional.
func parseDuration(s string, optional bool) (time.Duration, error) {
	if s == "" && optional {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: duration %q (like \"30m\" or \"2h\")", session.ErrInvalid, s)
	}
	return d, nil
}

// absolute makes a path of this server's pages into a link, on the origin the request came to.
func (a *api) absolute(r *http.Request, path string) string {
	scheme := "http"
	if a.cfg.SecureCookies || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + strings.TrimPrefix(path, "/")
}
