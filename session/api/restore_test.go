package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/sandlot/sandlot/session"
)

// TestRestoreNodes: nodes the engine lost (docker-compose down removes every node; the sessions stay in Redis)
// are made again with their names and hostnames when a server starts; nodes removed through Sandlot, and ended
// sessions, are not; a second pass makes nothing.
func TestRestoreNodes(t *testing.T) {
	s, nodes := memServer(t, serverOpts{})
	ctx := context.Background()
	addNodes := func(c created, n int) {
		for range n {
			s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, map[string]string{}, nil)
		}
	}
	down, partly, removed, ended := s.create(nil), s.create(nil), s.create(nil), s.create(nil)
	addNodes(down, 2)
	addNodes(partly, 2)
	addNodes(removed, 2)
	addNodes(ended, 1)
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+down.ID+"/instances", down.Token,
		map[string]string{"hostname": "manager"}, nil)
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/sessions/"+removed.ID+"/instances/node2", removed.Token, nil, nil)
	s.mustCall(http.StatusOK, "DELETE", "/api/v1/sessions/"+ended.ID, ended.Token, nil, nil)

	// What the engine loses: every node of one session (and its network), one node of another.
	if err := nodes.DeleteSession(ctx, down.ID); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Delete(ctx, partly.ID, "node2"); err != nil {
		t.Fatal(err)
	}
	before := nodes.Count()

	made, err := s.svc.RestoreNodes(ctx)
	if err != nil || made != 4 {
		t.Fatalf("RestoreNodes = %d, %v; want 4 (3 of one session, 1 of another)", made, err)
	}
	if got := nodes.Count(); got != before+4 {
		t.Fatalf("%d nodes on the engine, want %d", got, before+4)
	}
	hostnames := func(id string) map[string]string {
		list, err := nodes.List(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, in := range list {
			out[in.Name] = in.Hostname
		}
		return out
	}
	if got := hostnames(down.ID); len(got) != 3 || got["node1"] != "node1" || got["node3"] != "manager" {
		t.Errorf("the session that lost every node has %v", got)
	}
	if got := hostnames(partly.ID); len(got) != 2 {
		t.Errorf("the session that lost node2 has %v", got)
	}
	if got := hostnames(removed.ID); len(got) != 1 || got["node1"] == "" {
		t.Errorf("a node removed through Sandlot came back: %v", got)
	}
	if got := hostnames(ended.ID); len(got) != 0 {
		t.Errorf("an ended session got nodes: %v", got)
	}
	// The API sees the made nodes as running, and they answer.
	var got session.Session
	s.mustCall(http.StatusOK, "GET", "/api/v1/sessions/"+down.ID, down.Token, nil, &got)
	for _, in := range got.Instances {
		if in.Status != session.NodeRunning || in.IP == "" {
			t.Errorf("restored %s: %+v", in.Name, in)
		}
	}
	s.mustCall(http.StatusOK, "POST", "/api/v1/sessions/"+down.ID+"/instances/node3/exec", down.Token,
		map[string][]string{"cmd": {"hostname"}}, nil)

	if made, err := s.svc.RestoreNodes(ctx); err != nil || made != 0 {
		t.Fatalf("a second RestoreNodes = %d, %v; want 0", made, err)
	}
}
