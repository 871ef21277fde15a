package api

import (
	"net/http"

	"github.com/sandlot/sandlot/session"
)

// route is one entry of the API surface. The OpenAPI document lists exactly these (a test keeps them in sync).
type route struct {
	method, pattern string
	handler         http.Handler
}

// routes is the whole HTTP API at a glance: each route with what it needs of a token (session: a grant of that
// permission on the session in the path; admin: the admin token) and, when it changes something, the body it takes
// (stateChanging: from Sandlot's own pages or --public-origins only).
func (a *api) routes() []route {
	change := func(p session.Permission, h http.Handler) http.Handler {
		return a.stateChanging(jsonBody, a.session(p, h))
	}
	instructor := func(h http.Handler) http.Handler { return a.stateChanging(jsonBody, a.instructor(h, false)) }
	return []route{
		{"POST", "/api/v1/sessions", a.stateChanging(jsonBody, a.createSession())},
		{"GET", "/api/v1/sessions", a.admin(a.listSessions())},
		{"POST", "/api/v1/try", a.stateChanging(jsonBody, a.tryStack())}, // "Try in Sandlot": a stack in a new session
		{"GET", "/api/v1/sessions/{id}", a.session(session.PermDrive, a.getSession())},
		{"DELETE", "/api/v1/sessions/{id}", change(session.PermDrive, a.deleteSession())},
		{"POST", "/api/v1/sessions/{id}/extend", change(session.PermDrive, a.extendSession())},
		{"POST", "/api/v1/sessions/{id}/setup", change(session.PermDrive, a.setupSession())},
		{"POST", "/api/v1/sessions/{id}/instances", change(session.PermDrive, a.addInstance())},
		{"DELETE", "/api/v1/sessions/{id}/instances/{name}", change(session.PermDrive, a.removeInstance())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/exec", change(session.PermDrive, a.exec())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/start", change(session.PermDrive, a.act(session.ActionStart))},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/stop", change(session.PermDrive, a.act(session.ActionStop))},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/restart", change(session.PermDrive, a.act(session.ActionRestart))},
		{"GET", "/api/v1/sessions/{id}/instances/{name}/terminal", a.sessionOrLink(session.PermWatch, a.terminal())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/files", a.stateChanging(multipartBody, a.session(session.PermDrive, a.uploadFiles()))},
		{"PUT", "/api/v1/sessions/{id}/instances/{name}/files", a.stateChanging(rawBody, a.session(session.PermDrive, a.saveFile()))},
		{"GET", "/api/v1/sessions/{id}/instances/{name}/files", a.session(session.PermDrive, a.readFile())},
		{"GET", "/api/v1/sessions/{id}/instances/{name}/tree", a.session(session.PermDrive, a.tree())},
		{"GET", "/api/v1/sessions/{id}/network", a.session(session.PermDrive, a.getNetwork())},
		{"PUT", "/api/v1/sessions/{id}/network", change(session.PermDrive, a.putNetwork())},
		{"DELETE", "/api/v1/sessions/{id}/network", change(session.PermDrive, a.deleteNetwork())},
		{"POST", "/api/v1/sessions/{id}/viewer", change(session.PermDrive, a.viewerLink())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/ports/{port}/link", change(session.PermDrive, a.portLink())},
		// Workshops: the admin makes them; their instructor token runs one; attendees join by code.
		{"POST", "/api/v1/workshops", a.stateChanging(jsonBody, a.admin(a.createWorkshop()))},
		{"GET", "/api/v1/workshops", a.admin(a.listWorkshops())},
		{"GET", "/api/v1/workshops/{id}", a.instructor(a.getWorkshop(), false)},
		{"GET", "/api/v1/workshops/{id}/events", a.instructor(a.workshopEvents(), true)},
		{"GET", "/api/v1/workshops/{id}/attendance.csv", a.instructor(a.attendance(), false)},
		{"POST", "/api/v1/workshops/{id}/lock", instructor(a.lockWorkshop())},
		{"POST", "/api/v1/workshops/{id}/demo", instructor(a.startDemo())},
		{"POST", "/api/v1/workshops/{id}/seats", instructor(a.setSeats())},
		{"POST", "/api/v1/workshops/{id}/broadcast", instructor(a.broadcast())},
		{"POST", "/api/v1/workshops/{id}/extend", instructor(a.extendWorkshop())},
		{"POST", "/api/v1/workshops/{id}/end", instructor(a.endWorkshop())},
		{"GET", "/api/v1/join/{code}", a.lookupWorkshop()},
		{"POST", "/api/v1/join/{code}", a.stateChanging(jsonBody, a.joinWorkshop())},
		{"GET", "/api/v1/attendee", a.attendee(a.getAttendee(), false)},
		{"GET", "/api/v1/attendee/events", a.attendee(a.attendeeEvents(), true)},
		{"GET", "/api/v1/templates", a.listTemplates()},
		{"GET", "/api/v1/images", a.listImages()},
		{"POST", "/api/v1/images/preload", a.stateChanging(jsonBody, a.admin(a.preloadImages()))},
		{"POST", "/api/v1/images/import", a.stateChanging(rawBody, a.admin(a.importImages()))},
		{"GET", "/api/v1/openapi.json", a.openAPI()},
		{"GET", "/{$}", a.page()},
		{"GET", "/try", a.page()},
		{"GET", "/s/{id}", a.page()},
		{"GET", "/w/{code}", a.page()},
		{"GET", "/w/{id}/instructor", a.page()},
		{"GET", "/assets/{file}", a.assets()},
		{"GET", "/healthz", a.healthz()},
		{"GET", "/readyz", a.readyz()},
		{"GET", "/metrics", a.metricsHandler()},
		// The lab proxy, path-based (host-based lab URLs are routed before these: see NewHandler).
		{"GET", "/lab/{id}/{name}/{port}", a.proxy.PathHandler()},
		{"GET", "/lab/{id}/{name}/{port}/{path...}", a.proxy.PathHandler()},
		{"POST", "/lab/{id}/{name}/{port}/{path...}", a.proxy.PathHandler()},
		{"PUT", "/lab/{id}/{name}/{port}/{path...}", a.proxy.PathHandler()},
		{"PATCH", "/lab/{id}/{name}/{port}/{path...}", a.proxy.PathHandler()},
		{"DELETE", "/lab/{id}/{name}/{port}/{path...}", a.proxy.PathHandler()},
		{"OPTIONS", "/lab/{id}/{name}/{port}/{path...}", a.proxy.PathHandler()},
	}
}
