package netfault

import (
	"errors"
	"testing"
	"time"

	"github.com/sandlot/sandlot/instance"
)

var nodes = []string{"node1", "node2", "node3", "node4", "node5"}

func TestParseExpands(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	doc, err := Decode([]byte(`{"links":[{"from":"node1","to":"*","rate":"1mbit","duration":"60s"},
		{"from":"node2","to":"node1","loss":"20%"}],"partitions":[["node1","node2","node3"],["node4"]]}`))
	if err != nil {
		t.Fatal(err)
	}
	kept, faults, err := Parse(doc, nodes, now)
	if err != nil {
		t.Fatal(err)
	}
	if kept.Links[0].ExpiresAt == nil || !kept.Links[0].ExpiresAt.Equal(now.Add(time.Minute)) || kept.Links[1].ExpiresAt != nil {
		t.Fatalf("expiries: %+v", kept.Links)
	}
	if !kept.NextExpiry().Equal(now.Add(time.Minute)) {
		t.Fatalf("next expiry %v", kept.NextExpiry())
	}
	by := map[[2]string]instance.LinkFault{}
	for _, f := range faults {
		by[[2]string{f.From, f.To}] = f
	}
	// node1 -> every other at 1 Mbit/s; node2 -> node1 20%; groups {1,2,3} {4} {5}: 2*(3*1+3*1+1*1) = 14 drops.
	drops := 0
	for _, f := range faults {
		if f.Drop {
			drops++
		}
	}
	if drops != 14 || by[[2]string{"node1", "node3"}].Rate != 1e6 || by[[2]string{"node2", "node1"}].Loss != 0.2 ||
		!by[[2]string{"node4", "node5"}].Drop || by[[2]string{"node1", "node2"}].Drop {
		t.Fatalf("faults %+v", faults)
	}
	// Read back later, written again: the ends stay; past them, the fault is gone.
	again, _, err := Parse(kept, nodes, now.Add(30*time.Second))
	if err != nil || !again.Links[0].ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("rewritten: %+v, %v", again.Links, err)
	}
	later, _, err := Parse(kept, nodes, now.Add(2*time.Minute))
	if err != nil || len(later.Links) != 1 {
		t.Fatalf("after its end: %+v, %v", later.Links, err)
	}
	if w := kept.Without("node4"); len(w.Partitions) != 1 {
		t.Fatalf("without node4: %+v", w.Partitions)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]uint64{"1mbit": 1e6, "500kbit": 5e5, "1.5mbit": 15e5, "2mbps": 16e6, "8kbit": 8000, "10gbit": 1e10, "1Mbit": 1e6} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("%s: %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "0bit", "1", "7kbit", "11gbit", "-1mbit", "1e9bit", "mbit", "1 mbit", "1tbit"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"links":[{"from":"node1","to":"*","loss":"20%","rate":"1mbit","duration":"60s"}],"partitions":[["node1"],["node2"]]}`))
	f.Add([]byte(`{"partitions":[["node1","node1"]],"partitions_duration":"1s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Decode(data)
		if err != nil {
			return
		}
		kept, faults, err := Parse(doc, nodes, time.Now())
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("an error that is not ErrInvalid: %v", err)
			}
			return
		}
		for _, f := range faults {
			if f.From == f.To || f.Loss < 0 || f.Loss > 1 || (f.Jitter > 0 && f.Latency == 0) {
				t.Fatalf("accepted %+v from %s", f, data)
			}
		}
		if _, _, err := Parse(kept, nodes, time.Now()); err != nil {
			t.Fatalf("what Parse kept does not parse again: %v", err)
		}
	})
}
