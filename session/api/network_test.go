package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandlot/sandlot/session"
)

// The fault picture through the API, on nodes in memory (a kernel without sch_netem): applied whole or not at
// all, bad input named, 422 for latency, healing by itself, a removed node's faults gone, viewers refused.
// TestFaultsOnNodes (package instance) and TestNetworkFaultsSwarm are the same on real nodes.
func TestNetworkFaultsAPI(t *testing.T) {
	s, nodes := memServer(t, serverOpts{})
	c := s.create(nil)
	for range 3 {
		s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil)
	}
	path := "/api/v1/sessions/" + c.ID + "/network"
	var empty networkResponse
	s.mustCall(200, "GET", path, c.Token, nil, &empty)
	if len(empty.Links) != 0 || len(empty.Partitions) != 0 || !empty.Supported.Loss || !empty.Supported.Rate ||
		empty.Supported.Latency {
		t.Fatalf("a new session's network: %+v", empty)
	}

	scenario := `{"links":[{"from":"node1","to":"node2","loss":"20%","rate":"1mbit"},{"from":"node3","to":"*","loss":"5%"}],
		"partitions":[["node1"],["node2","node3"]]}`
	var put networkResponse
	s.mustCall(200, "PUT", path, c.Token, scenario, &put)
	if len(put.Links) != 2 || len(put.Partitions) != 2 || put.Links[1].To != "*" {
		t.Fatalf("PUT answered %+v", put)
	}
	note := func() string { b, _ := nodes.Faults(t.Context(), c.ID); return string(b) }
	applied := note()
	if !strings.Contains(applied, `"loss":"20%"`) {
		t.Fatalf("applied %s", applied)
	}

	for _, tc := range []struct{ body, status, field string }{
		{`{"links":[{"from":"node1","to":"node9","loss":"20%"}]}`, "400", "links[0].to"},
		{`{"links":[{"from":"node1","to":"node2","loss":"150%"}]}`, "400", "links[0].loss"},
		{`{"links":[{"from":"node1","to":"node2","loss":"-5%"}]}`, "400", "links[0].loss"},
		{`{"links":[{"from":"node1","to":"node2","rate":"0"}]}`, "400", "links[0].rate"},
		{`{"links":[{"from":"node1","to":"node2","rate":"0kbit"}]}`, "400", "links[0].rate"},
		{`{"links":[{"from":"node1","to":"node2","rate":"1mbit","duration":"-1s"}]}`, "400", "links[0].duration"},
		{`{"links":[{"from":"node1","to":"node2","rate":"1mbit","duration":"9000h"}]}`, "400", "links[0].duration"},
		{`{"links":[{"from":"node1","to":"node1","loss":"1%"}]}`, "400", "links[0].to"},
		{`{"links":[{"from":"node1","to":"node2"}]}`, "400", "links[0]"},
		{`{"links":[{"from":"node1","to":"node2","loss":"1%"},{"from":"*","to":"node2","loss":"2%"}]}`, "400", "links[1]"},
		{`{"links":[{"from":"node1","to":"node2","loss":"1%","latency":"100ms"}]}`, "422", "sch_netem"},
		{`{"links":[{"from":"node1","to":"node2","jitter":"10ms"}]}`, "400", "links[0].jitter"},
		{`{"partitions":[["node1","node2"],["node2"]]}`, "400", "partitions[1][0]"},
		{`{"partitions":[["node1","node2","node3"]]}`, "400", "partitions"},
		{`{"partitions":[["node1"],["nodeX"]]}`, "400", "partitions[1][0]"},
		{`{"links":[{"from":"node1","to":"node2","loss":"1%","speed":"fast"}]}`, "400", "speed"},
		{`{"links":[{"from":"node1",`, "400", "malformed JSON"},
		{`{"links":[]} {}`, "400", "malformed JSON"},
	} {
		resp := s.call("PUT", path, c.Token, tc.body, nil)
		var e apiError
		s.call("PUT", path, c.Token, tc.body, &e)
		if got := resp.Status[:3]; got != tc.status || !strings.Contains(e.Error.Message, tc.field) {
			t.Errorf("PUT %s: %s %q, want %s naming %s", tc.body, got, e.Error.Message, tc.status, tc.field)
		}
		if note() != applied {
			t.Fatalf("PUT %s (refused) changed the faults to %s", tc.body, note())
		}
	}

	// A viewer may not change it (TestEveryRouteChecksItsToken checks every route; this is the picture after).
	viewer := s.issue(t, session.Grant{Scope: session.ScopeViewer, Session: c.ID})
	s.mustCall(403, "PUT", path, viewer, `{}`, nil)
	s.mustCall(403, "DELETE", path, viewer, nil, nil)
	if note() != applied {
		t.Fatal("a viewer's request changed the faults")
	}

	// A removed node's faults go; the others stay.
	s.mustCall(204, "DELETE", "/api/v1/sessions/"+c.ID+"/instances/node3", c.Token, nil, nil)
	var after networkResponse
	s.mustCall(200, "GET", path, c.Token, nil, &after)
	if len(after.Links) != 1 || after.Links[0].From != "node1" || len(after.Partitions) != 2 || len(after.Partitions[1]) != 1 {
		t.Fatalf("after node3 went: %+v", after)
	}

	// A node gone behind this process's back (another process removed it): reading leaves its faults out.
	if err := s.store.DeleteInstance(t.Context(), c.ID, "node2"); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Delete(t.Context(), c.ID, "node2"); err != nil {
		t.Fatal(err)
	}
	s.mustCall(200, "GET", path, c.Token, nil, &after)
	if len(after.Links) != 0 || len(after.Partitions) != 0 || strings.Contains(note(), "node2") {
		t.Fatalf("after node2 went elsewhere: %+v, kept %s", after, note())
	}
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions/"+c.ID+"/instances", c.Token, nil, nil) // node2 again

	// A duration heals by itself; what has none stays.
	s.mustCall(200, "PUT", path, c.Token, `{"links":[{"from":"node1","to":"node2","loss":"20%","duration":"300ms"},
		{"from":"node2","to":"node1","loss":"1%"}]}`, &put)
	if put.Links[0].ExpiresAt == nil || put.Links[1].ExpiresAt != nil {
		t.Fatalf("expiries: %+v", put.Links)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(note(), `"20%"`) {
		if time.Now().After(deadline) {
			t.Fatalf("a 300ms fault is still there: %s", note())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mustCall(200, "GET", path, c.Token, nil, &after)
	if len(after.Links) != 1 || after.Links[0].Loss != "1%" {
		t.Fatalf("after healing: %+v", after.Links)
	}

	s.mustCall(204, "DELETE", path, c.Token, nil, nil)
	if note() != "" {
		t.Fatalf("after DELETE: %s", note())
	}
	s.mustCall(200, "GET", path, c.Token, nil, &after)
	if len(after.Links) != 0 {
		t.Fatalf("after DELETE: %+v", after)
	}
}
