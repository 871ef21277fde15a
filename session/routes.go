package session

import "net/http"

// route is one entry of the API surface. The OpenAPI document lists exactly these (a test keeps them in sync).
type route struct {
	method, pattern string
	handler         http.Handler
}

// routes is the whole HTTP API at a glance.
func (a *api) routes() []route {
	return []route{
		{"POST", "/api/v1/sessions", a.createSession()},
		{"GET", "/api/v1/sessions", a.admin(a.listSessions())},
		{"GET", "/api/v1/sessions/{id}", a.session(a.getSession())},
		{"DELETE", "/api/v1/sessions/{id}", a.session(a.deleteSession())},
		{"POST", "/api/v1/sessions/{id}/extend", a.session(a.extendSession())},
		{"POST", "/api/v1/sessions/{id}/setup", a.session(a.setupSession())},
		{"POST", "/api/v1/sessions/{id}/instances", a.session(a.addInstance())},
		{"DELETE", "/api/v1/sessions/{id}/instances/{name}", a.session(a.removeInstance())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/exec", a.session(a.exec())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/start", a.session(a.instanceAction("start"))},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/stop", a.session(a.instanceAction("stop"))},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/restart", a.session(a.instanceAction("restart"))},
		{"GET", "/api/v1/sessions/{id}/instances/{name}/terminal", a.sessionOrLink(a.terminal())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/files", a.session(a.uploadFiles())},
		{"PUT", "/api/v1/sessions/{id}/instances/{name}/files", a.session(a.saveFile())},
		{"GET", "/api/v1/sessions/{id}/instances/{name}/files", a.session(a.readFile())},
		{"GET", "/api/v1/sessions/{id}/instances/{name}/tree", a.session(a.tree())},
		{"POST", "/api/v1/sessions/{id}/viewer", a.session(a.viewerLink())},
		{"POST", "/api/v1/sessions/{id}/instances/{name}/ports/{port}/link", a.session(a.portLink())},
		{"GET", "/api/v1/templates", a.listTemplates()},
		{"GET", "/api/v1/openapi.json", a.openAPI()},
		{"GET", "/{$}", a.page()},
		{"GET", "/s/{id}", a.page()},
		{"GET", "/assets/{file}", a.assets()},
		{"GET", "/healthz", a.healthz()},
		{"GET", "/readyz", a.readyz()},
		{"GET", "/metrics", a.metricsHandler()},
		// The lab proxy, path-based (host-based lab URLs are routed before these: see NewHandler).
		{"GET", "/lab/{id}/{name}/{port}", a.labPath()},
		{"GET", "/lab/{id}/{name}/{port}/{path...}", a.labPath()},
		{"POST", "/lab/{id}/{name}/{port}/{path...}", a.labPath()},
		{"PUT", "/lab/{id}/{name}/{port}/{path...}", a.labPath()},
		{"PATCH", "/lab/{id}/{name}/{port}/{path...}", a.labPath()},
		{"DELETE", "/lab/{id}/{name}/{port}/{path...}", a.labPath()},
		{"OPTIONS", "/lab/{id}/{name}/{port}/{path...}", a.labPath()},
	}
}
