package instance

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
)

// The labels on everything Sandlot creates. Nothing without LabelSession is ever changed or removed.
const (
	LabelSession  = "sandlot.session"
	LabelInstance = "sandlot.instance"
	LabelOwner    = "sandlot.owner" // the deployment: Sandlot processes sharing one Redis share it
	labelHostname = "sandlot.hostname"
	labelSubnet   = "sandlot.subnet"
)

var (
	sessionPattern  = regexp.MustCompile(`^[a-z0-9]{1,40}$`)
	namePattern     = regexp.MustCompile(`^node([1-9][0-9]{0,3})$`)
	hostnamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

func checkSession(session string) error {
	if !sessionPattern.MatchString(session) {
		return fmt.Errorf("%w: session id %q (1 to 40 lowercase letters and digits)", ErrInvalid, session)
	}
	return nil
}

// nodeIndex is N of the instance name nodeN.
func nodeIndex(name string) (int, error) {
	m := namePattern.FindStringSubmatch(name)
	if m == nil {
		return 0, fmt.Errorf("%w: instance name %q (node1, node2, ...)", ErrInvalid, name)
	}
	return strconv.Atoi(m[1])
}

func checkHostname(h string) error {
	if !hostnamePattern.MatchString(h) {
		return fmt.Errorf("%w: hostname %q (lowercase letters, digits and '-', at most 63)", ErrInvalid, h)
	}
	return nil
}

func networkName(session string) string         { return "sandlot-" + session }
func containerName(session, name string) string { return "sandlot-" + session + "-" + name }

// bridgeName names the host's bridge of a session network so that an operator can tell it apart (at most 15
// characters, the kernel's limit).
func bridgeName(session string) string {
	sum := sha256.Sum256([]byte(session))
	return "sl-" + hex.EncodeToString(sum[:6])
}

// nodeOffset keeps the low addresses of a session subnet free: the gateway takes the first, and on overlay
// networks each engine attached to the network takes the next free one for its load balancer endpoint.
const nodeOffset = 10

// nodeAddr is the fixed address of nodeN in a session subnet: node1 is the 11th address (198.18.0.11 in
// 198.18.0.0/26), so a learner can tell a node's address from its name.
func nodeAddr(subnet netip.Prefix, index int) (netip.Addr, error) {
	last := 1<<(32-subnet.Bits()) - 2 // the broadcast address is not for nodes
	if index < 1 || index+nodeOffset > last {
		return netip.Addr{}, fmt.Errorf("%w: node%d does not fit subnet %s", ErrInvalid, index, subnet)
	}
	return addrAdd(subnet.Masked().Addr(), uint32(index+nodeOffset)), nil
}

func gatewayAddr(subnet netip.Prefix) netip.Addr { return addrAdd(subnet.Masked().Addr(), 1) }

func addrAdd(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
