package instance

import (
	"fmt"
	"net/netip"
)

// freeSubnet returns the first subnet of the given size in pool that overlaps none of used.
func freeSubnet(pool netip.Prefix, bits int, used []netip.Prefix) (netip.Prefix, error) {
	step := uint32(1) << (32 - bits)
	count := uint64(1) << (bits - pool.Bits())
	addr := pool.Masked().Addr()
	for i := uint64(0); i < count; i++ {
		candidate := netip.PrefixFrom(addr, bits)
		if !overlapsAny(candidate, used) {
			return candidate, nil
		}
		addr = addrAdd(addr, step)
	}
	return netip.Prefix{}, fmt.Errorf("%w: all %d /%d subnets of %s are in use", ErrNoSubnet, count, bits, pool)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}
