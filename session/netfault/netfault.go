// Package netfault is a session's network fault picture as the API reads and writes it: one JSON document of
// links (one direction each, from a node to another or to every other, "*") and partitions (Blockade's model:
// groups of nodes that reach each other and not the rest), each with an optional duration after which it heals.
// Parse checks a document against the session's nodes and turns it into the per-pair faults package instance
// applies; what it rejects names the field.
package netfault

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sandlot/sandlot/instance"
)

// Document is a session's whole fault picture.
type Document struct {
	Links      []Link     `json:"links"`
	Partitions [][]string `json:"partitions"`
	// PartitionsDuration, when set, heals the partitions after that long; PartitionsExpireAt says when.
	PartitionsDuration string     `json:"partitions_duration,omitempty"`
	PartitionsExpireAt *time.Time `json:"partitions_expire_at,omitempty"`
}

// Link is what happens to the packets from one node to another ("*": every other node) of the session.
type Link struct {
	From      string     `json:"from"`
	To        string     `json:"to"`
	Latency   string     `json:"latency,omitempty"`   // a Go duration: "100ms"; needs sch_netem
	Jitter    string     `json:"jitter,omitempty"`    // with a latency; needs sch_netem
	Loss      string     `json:"loss,omitempty"`      // "20%"
	Rate      string     `json:"rate,omitempty"`      // "1mbit", "500kbit", "2mbps" (bytes), as tc writes them
	Duplicate string     `json:"duplicate,omitempty"` // "1%"; needs sch_netem
	Corrupt   string     `json:"corrupt,omitempty"`   // "1%"; needs sch_netem
	Duration  string     `json:"duration,omitempty"`  // heals after this long: "60s"
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ErrInvalid says a document is wrong; the message names the field.
var ErrInvalid = errors.New("invalid network faults")

// Limits of a document.
const (
	MaxLinks    = 200
	MaxDuration = 24 * time.Hour
	maxDelay    = time.Minute
	minRate     = 8_000          // bits/s
	maxRate     = 10_000_000_000 // bits/s
)

// Empty reports whether the document has no fault at all.
func (d Document) Empty() bool { return len(d.Links) == 0 && len(d.Partitions) == 0 }

// Nodes are the names of the nodes a document's faults touch, sorted.
func (d Document) Nodes(all []string) []string {
	seen := map[string]bool{}
	for _, l := range d.Links {
		for _, n := range []string{l.From, l.To} {
			if n == "*" {
				for _, a := range all {
					seen[a] = true
				}
			} else {
				seen[n] = true
			}
		}
	}
	for _, g := range d.Partitions {
		for _, n := range g {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Decode reads a document strictly: unknown fields and trailing data are errors.
func Decode(data []byte) (Document, error) {
	var d Document
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("%w: malformed JSON: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Document{}, fmt.Errorf("%w: malformed JSON: data after the object", ErrInvalid)
	}
	return d, nil
}

// Parse checks d against the session's nodes and stamps each duration's end from now: the document to keep
// (faults already past their end dropped) and the per-pair faults it means, one per pair that has any, sorted.
func Parse(d Document, nodes []string, now time.Time) (Document, []instance.LinkFault, error) {
	known := map[string]bool{}
	for _, n := range nodes {
		known[n] = true
	}
	if len(d.Links) > MaxLinks {
		return Document{}, nil, fmt.Errorf("%w: links: %d of them (at most %d)", ErrInvalid, len(d.Links), MaxLinks)
	}
	type pair = [2]string
	faults := map[pair]*instance.LinkFault{}
	at := func(from, to string) *instance.LinkFault {
		f := faults[pair{from, to}]
		if f == nil {
			f = &instance.LinkFault{From: from, To: to}
			faults[pair{from, to}] = f
		}
		return f
	}
	out := Document{Links: []Link{}, Partitions: [][]string{}}
	seen := map[pair]int{}
	for i, l := range d.Links {
		field := fmt.Sprintf("links[%d]", i)
		if l.ExpiresAt != nil && l.Duration == "" {
			return Document{}, nil, fmt.Errorf("%w: %s.expires_at: set by the server from duration", ErrInvalid, field)
		}
		f, err := parseLink(l, field)
		if err != nil {
			return Document{}, nil, err
		}
		if l.Duration != "" {
			dur, err := parseDuration(l.Duration, field+".duration", MaxDuration)
			if err != nil {
				return Document{}, nil, err
			}
			end := now.Add(dur).UTC().Truncate(time.Millisecond)
			if l.ExpiresAt != nil && l.ExpiresAt.Before(end) { // read back and written again: keeps its end
				end = l.ExpiresAt.UTC()
			}
			if !end.After(now) {
				continue // healed already
			}
			l.ExpiresAt = &end
		}
		froms, err := expand(l.From, field+".from", known, nodes)
		if err != nil {
			return Document{}, nil, err
		}
		tos, err := expand(l.To, field+".to", known, nodes)
		if err != nil {
			return Document{}, nil, err
		}
		if l.From != "*" && l.From == l.To {
			return Document{}, nil, fmt.Errorf("%w: %s.to: a link from %s to itself", ErrInvalid, field, l.From)
		}
		for _, from := range froms {
			for _, to := range tos {
				if from == to {
					continue
				}
				if j, dup := seen[pair{from, to}]; dup {
					return Document{}, nil, fmt.Errorf("%w: %s: links[%d] sets the link from %s to %s already",
						ErrInvalid, field, j, from, to)
				}
				seen[pair{from, to}] = i
				g := at(from, to)
				g.Loss, g.Rate, g.Latency, g.Jitter = f.Loss, f.Rate, f.Latency, f.Jitter
				g.Duplicate, g.Corrupt = f.Duplicate, f.Corrupt
			}
		}
		out.Links = append(out.Links, l)
	}
	groups, err := parsePartitions(d, known, nodes, now, &out)
	if err != nil {
		return Document{}, nil, err
	}
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, from := range g {
				for _, to := range h {
					at(from, to).Drop = true
				}
			}
		}
	}
	list := make([]instance.LinkFault, 0, len(faults))
	for _, f := range faults {
		list = append(list, *f)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].From != list[j].From {
			return nodeLess(list[i].From, list[j].From)
		}
		return nodeLess(list[i].To, list[j].To)
	})
	return out, list, nil
}

// parsePartitions checks the partitions and returns their groups, with the nodes no group names as one more
// (as Blockade does).
func parsePartitions(d Document, known map[string]bool, nodes []string, now time.Time, out *Document) ([][]string, error) {
	if len(d.Partitions) == 0 {
		if d.PartitionsDuration != "" {
			return nil, fmt.Errorf("%w: partitions_duration: no partitions", ErrInvalid)
		}
		return nil, nil
	}
	if d.PartitionsDuration != "" {
		dur, err := parseDuration(d.PartitionsDuration, "partitions_duration", MaxDuration)
		if err != nil {
			return nil, err
		}
		end := now.Add(dur).UTC().Truncate(time.Millisecond)
		if d.PartitionsExpireAt != nil && d.PartitionsExpireAt.Before(end) {
			end = d.PartitionsExpireAt.UTC()
		}
		if !end.After(now) {
			return nil, nil // healed already
		}
		out.PartitionsDuration, out.PartitionsExpireAt = d.PartitionsDuration, &end
	} else if d.PartitionsExpireAt != nil {
		return nil, fmt.Errorf("%w: partitions_expire_at: set by the server from partitions_duration", ErrInvalid)
	}
	in := map[string]int{}
	var groups [][]string
	for i, g := range d.Partitions {
		field := fmt.Sprintf("partitions[%d]", i)
		if len(g) == 0 {
			return nil, fmt.Errorf("%w: %s: an empty group", ErrInvalid, field)
		}
		for j, n := range g {
			if !known[n] {
				return nil, fmt.Errorf("%w: %s[%d]: no node %q in this session", ErrInvalid, field, j, n)
			}
			if k, dup := in[n]; dup {
				return nil, fmt.Errorf("%w: %s[%d]: %s is in partitions[%d] already", ErrInvalid, field, j, n, k)
			}
			in[n] = i
		}
		groups = append(groups, append([]string(nil), g...))
	}
	var rest []string
	for _, n := range nodes {
		if _, ok := in[n]; !ok {
			rest = append(rest, n)
		}
	}
	if len(rest) > 0 {
		groups = append(groups, rest)
	}
	if len(groups) < 2 {
		return nil, fmt.Errorf("%w: partitions: one group holding every node partitions nothing", ErrInvalid)
	}
	out.Partitions = d.Partitions
	return groups, nil
}

// expand is the nodes a link's end names.
func expand(name, field string, known map[string]bool, nodes []string) ([]string, error) {
	switch {
	case name == "*":
		return nodes, nil
	case name == "":
		return nil, fmt.Errorf("%w: %s: required (a node, or \"*\" for every other)", ErrInvalid, field)
	case !known[name]:
		return nil, fmt.Errorf("%w: %s: no node %q in this session", ErrInvalid, field, name)
	}
	return []string{name}, nil
}

func parseLink(l Link, field string) (instance.LinkFault, error) {
	var f instance.LinkFault
	var err error
	if l.Loss != "" {
		if f.Loss, err = parsePercent(l.Loss, field+".loss"); err != nil {
			return f, err
		}
	}
	if l.Duplicate != "" {
		if f.Duplicate, err = parsePercent(l.Duplicate, field+".duplicate"); err != nil {
			return f, err
		}
	}
	if l.Corrupt != "" {
		if f.Corrupt, err = parsePercent(l.Corrupt, field+".corrupt"); err != nil {
			return f, err
		}
	}
	if l.Rate != "" {
		if f.Rate, err = ParseRate(l.Rate); err != nil {
			return f, fmt.Errorf("%w: %s.rate: %v", ErrInvalid, field, err)
		}
	}
	if l.Latency != "" {
		if f.Latency, err = parseDuration(l.Latency, field+".latency", maxDelay); err != nil {
			return f, err
		}
	}
	if l.Jitter != "" {
		if f.Jitter, err = parseDuration(l.Jitter, field+".jitter", maxDelay); err != nil {
			return f, err
		}
		if f.Latency == 0 {
			return f, fmt.Errorf("%w: %s.jitter: needs a latency", ErrInvalid, field)
		}
	}
	if f == (instance.LinkFault{}) {
		return f, fmt.Errorf("%w: %s: no fault (latency, jitter, loss, rate, duplicate or corrupt)", ErrInvalid, field)
	}
	return f, nil
}

var percentPattern = regexp.MustCompile(`^([0-9]{1,3}(\.[0-9]{1,4})?)%$`)

// parsePercent reads "20%" (0% to 100%, up to 4 decimals) as a fraction.
func parsePercent(s, field string) (float64, error) {
	m := percentPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%w: %s: %q is not a percentage such as \"20%%\"", ErrInvalid, field, s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	if v <= 0 || v > 100 {
		return 0, fmt.Errorf("%w: %s: %s is not above 0%% and at most 100%%", ErrInvalid, field, s)
	}
	return v / 100, nil
}

func parseDuration(s, field string, max time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q is not a duration such as \"100ms\" or \"60s\"", ErrInvalid, field, s)
	}
	if d <= 0 || d > max {
		return 0, fmt.Errorf("%w: %s: %s is not above 0 and at most %s", ErrInvalid, field, s, max)
	}
	return d, nil
}

var ratePattern = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$`)

// ParseRate reads a rate the way tc writes it: bit, kbit, mbit, gbit (bits per second, powers of 1000) or bps,
// kbps, mbps, gbps (bytes per second). It is between 8kbit and 10gbit.
func ParseRate(s string) (uint64, error) {
	m := ratePattern.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a rate such as \"1mbit\" or \"500kbit\"", s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
		"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}[m[3]]
	bits := v * unit
	if bits < minRate || bits > maxRate || math.IsInf(bits, 0) {
		return 0, fmt.Errorf("%s is not between 8kbit and 10gbit", s)
	}
	return uint64(bits), nil
}

// NextExpiry is the earliest end of a fault in d, or the zero time if none has one.
func (d Document) NextExpiry() time.Time {
	var next time.Time
	consider := func(t *time.Time) {
		if t != nil && (next.IsZero() || t.Before(next)) {
			next = *t
		}
	}
	for _, l := range d.Links {
		consider(l.ExpiresAt)
	}
	consider(d.PartitionsExpireAt)
	return next
}

// Without is d without the faults that name node (a node removed from the session).
func (d Document) Without(node string) Document {
	out := Document{Links: []Link{}, Partitions: [][]string{}, PartitionsDuration: d.PartitionsDuration,
		PartitionsExpireAt: d.PartitionsExpireAt}
	for _, l := range d.Links {
		if l.From != node && l.To != node {
			out.Links = append(out.Links, l)
		}
	}
	for _, g := range d.Partitions {
		var kept []string
		for _, n := range g {
			if n != node {
				kept = append(kept, n)
			}
		}
		if len(kept) > 0 {
			out.Partitions = append(out.Partitions, kept)
		}
	}
	return out
}

func nodeLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
