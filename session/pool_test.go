package session

import (
	"maps"
	"testing"
)

func TestParsePool(t *testing.T) {
	for _, c := range []struct {
		spec string
		want map[string]int
		bad  bool
	}{
		{"", map[string]int{}, false},
		{"1-node=3", map[string]int{"1-node": 3}, false},
		{" 1-node=3 , swarm-3m2w=1,", map[string]int{"1-node": 3, "swarm-3m2w": 1}, false},
		{"1-node=0", map[string]int{"1-node": 0}, false},
		{"1-node", nil, true},
		{"=3", nil, true},
		{"1-node=-1", nil, true},
		{"1-node=x", nil, true},
		{"1-node=1,1-node=2", nil, true},
	} {
		got, err := ParsePool(c.spec)
		if (err != nil) != c.bad || !c.bad && !maps.Equal(got, c.want) {
			t.Errorf("ParsePool(%q) = %v, %v; want %v (error: %v)", c.spec, got, err, c.want, c.bad)
		}
	}
}
