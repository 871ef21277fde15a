package api

import (
	"net/http"

	"github.com/sandlot/sandlot/session/netfault"
)

// networkResponse is a session's fault picture and what the engine's kernel lets it hold.
type networkResponse struct {
	netfault.Document
	Supported supportedFaults `json:"supported"`
}

// supportedFaults says which fault fields the kernel allows (the others answer 422).
type supportedFaults struct {
	Loss       bool `json:"loss"`
	Partitions bool `json:"partitions"`
	Rate       bool `json:"rate"`
	Latency    bool `json:"latency"`
	Jitter     bool `json:"jitter"`
	Duplicate  bool `json:"duplicate"`
	Corrupt    bool `json:"corrupt"`
}

func (a *api) networkResponse(doc netfault.Document) networkResponse {
	s := a.svc.FaultSupport()
	return networkResponse{Document: doc, Supported: supportedFaults{Loss: s.Filter, Partitions: s.Filter,
		Rate: s.Shape, Latency: s.Netem && s.Shape, Jitter: s.Netem && s.Shape, Duplicate: s.Netem && s.Shape,
		Corrupt: s.Netem && s.Shape}}
}

func (a *api) getNetwork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, err := a.svc.Network(r.Context(), r.PathValue("id"))
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, a.networkResponse(doc))
	})
}

// putNetwork replaces the session's whole fault picture: applied whole, or not at all.
func (a *api) putNetwork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc netfault.Document
		if err := decode(w, r, &doc); err != nil {
			fail(w, a.log, err)
			return
		}
		doc, err := a.svc.SetNetwork(r.Context(), r.PathValue("id"), doc)
		if err != nil {
			fail(w, a.log, err)
			return
		}
		respond(w, http.StatusOK, a.networkResponse(doc))
	})
}

func (a *api) deleteNetwork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.svc.ClearNetwork(r.Context(), r.PathValue("id")); err != nil {
			fail(w, a.log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
