package instance

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestFreeSubnet(t *testing.T) {
	pool := netip.MustParsePrefix("198.18.0.0/24")
	tests := []struct {
		name string
		bits int
		used []string
		want string
		err  error
	}{
		{"empty pool", 26, nil, "198.18.0.0/26", nil},
		{"first taken", 26, []string{"198.18.0.0/26"}, "198.18.0.64/26", nil},
		{"overlapping bigger net", 26, []string{"198.18.0.0/25"}, "198.18.0.128/26", nil},
		{"overlapping smaller net", 26, []string{"198.18.0.70/32"}, "198.18.0.0/26", nil},
		{"unrelated nets ignored", 26, []string{"172.17.0.0/16", "10.0.0.0/8"}, "198.18.0.0/26", nil},
		{"full", 26, []string{"198.18.0.0/24"}, "", ErrNoSubnet},
		{"whole pool one net", 24, nil, "198.18.0.0/24", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var used []netip.Prefix
			for _, u := range tt.used {
				used = append(used, netip.MustParsePrefix(u))
			}
			got, err := freeSubnet(pool, tt.bits, used)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestNodeAddr(t *testing.T) {
	subnet := netip.MustParsePrefix("198.18.0.64/26")
	if got := gatewayAddr(subnet).String(); got != "198.18.0.65" {
		t.Errorf("gateway = %s", got)
	}
	for index, want := range map[int]string{1: "198.18.0.75", 5: "198.18.0.79", 52: "198.18.0.126"} {
		got, err := nodeAddr(subnet, index)
		if err != nil || got.String() != want {
			t.Errorf("node%d = %v, %v; want %s", index, got, err, want)
		}
	}
	for _, index := range []int{0, 53, 1000} {
		if _, err := nodeAddr(subnet, index); !errors.Is(err, ErrInvalid) {
			t.Errorf("node%d: err = %v, want ErrInvalid", index, err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"a", "abc123", strings.Repeat("x", 40)} {
		if err := checkSession(s); err != nil {
			t.Errorf("session %q: %v", s, err)
		}
	}
	for _, s := range []string{"", "ABC", "a-b", "a/b", "../x", strings.Repeat("x", 41), "system!"} {
		if err := checkSession(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("session %q accepted", s)
		}
	}
	for name, want := range map[string]int{"node1": 1, "node12": 12, "node9999": 9999} {
		if got, err := nodeIndex(name); err != nil || got != want {
			t.Errorf("nodeIndex(%q) = %d, %v", name, got, err)
		}
	}
	for _, name := range []string{"", "node", "node0", "node01", "node10000", "Node1", "node1 ", "xnode1"} {
		if _, err := nodeIndex(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("nodeIndex(%q) accepted", name)
		}
	}
	for _, h := range []string{"-a", "a-", "A", "a.b", strings.Repeat("a", 64), ""} {
		if err := checkHostname(h); !errors.Is(err, ErrInvalid) {
			t.Errorf("hostname %q accepted", h)
		}
	}
	if b := bridgeName(strings.Repeat("z", 40)); len(b) > 15 {
		t.Errorf("bridge name %q longer than 15", b)
	}
	if bridgeName("aaaaaaaaaaaaaaaaaa1") == bridgeName("aaaaaaaaaaaaaaaaaa2") {
		t.Error("bridge names of sessions with a common prefix collide")
	}
}

func TestProbe(t *testing.T) {
	all := "bridge=yes\nveth=yes\nvxlan=yes\noverlayfs=yes\niptables-nat=yes\nipvs=yes\nnetem=yes\nhtb=yes\n" +
		"iptables-physdev=yes\niptables-statistic=yes\niptables-classify=yes\n" +
		"userns-root=100000\ncgroups-own=0\ndisk-bytes=67108864\nstore-bytes=67108864\nprobe=done\n"
	p, err := parseProbe(all)
	if err != nil {
		t.Fatal(err)
	}
	if p.usernsRoot != 100000 || !p.cgroupsOwn || p.disk != 64<<20 || p.store != 64<<20 {
		t.Fatalf("probe read as %+v", p)
	}
	if notes, err := p.features.Check(); err != nil || len(notes) != 0 {
		t.Fatalf("all present: notes %v, err %v", notes, err)
	}

	p, err = parseProbe(strings.NewReplacer("ipvs=yes", "ipvs=no", "netem=yes", "netem=no", "cgroups-own=0",
		"cgroups-own=65534").Replace(all))
	if err != nil {
		t.Fatal(err)
	}
	notes, err := p.features.Check()
	if err != nil || len(notes) != 2 || !strings.Contains(strings.Join(notes, "\n"), "routing mesh") || p.cgroupsOwn {
		t.Fatalf("optional missing: notes %v, err %v, cgroups own %v", notes, err, p.cgroupsOwn)
	}

	p, _ = parseProbe(strings.Replace(all, "bridge=yes", "bridge=no", 1))
	if _, err := p.features.Check(); !errors.Is(err, ErrKernelFeature) || !strings.Contains(err.Error(), "bridge") {
		t.Fatalf("bridge missing: err = %v", err)
	}

	if _, err := parseProbe("bridge=yes\n"); err == nil {
		t.Fatal("an unfinished probe was accepted")
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.SubnetPool != DefaultSubnetPool || c.SubnetBits != 26 || c.Image != "sandlot/node:latest" {
		t.Fatalf("defaults: %+v", c)
	}
	for _, tutorial := range []string{"172.17.0.0/16", "172.31.0.0/16", "10.0.0.0/8", "192.168.0.0/16"} {
		if DefaultSubnetPool.Overlaps(netip.MustParsePrefix(tutorial)) {
			t.Errorf("default pool overlaps %s", tutorial)
		}
	}
	bad := []Config{
		{Network: "mesh"}, {Isolation: "none"}, {Storage: "nfs"},
		{SubnetPool: netip.MustParsePrefix("fd00::/64")},
		{SubnetBits: 8}, {SubnetBits: 30},
		{Memory: 1 << 20}, {Pids: 10},
	}
	for _, b := range bad {
		if _, err := b.withDefaults(); err == nil {
			t.Errorf("accepted %+v", b)
		}
	}
}

func TestCapped(t *testing.T) {
	c := &capped{limit: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q = %d, %v", s, n, err)
		}
	}
	if string(c.buf) != "abcde" || !c.dropped {
		t.Fatalf("kept %q, dropped %v", c.buf, c.dropped)
	}
}
