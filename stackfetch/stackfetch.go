// Package stackfetch fetches the compose file of a "Try in Sandlot" link (/?stack=<url>) from wherever the link
// says, which makes it a server-side request that a stranger aims: an SSRF door. What it lets through is decided
// here and nowhere else (decision 0022):
//
//   - only http and https URLs, without a user name or password;
//   - only public unicast addresses, checked on the address actually dialed (a net.Dialer Control func), so that
//     neither a name that resolves to a private address, nor DNS rebinding, nor a redirect gets past it; private,
//     loopback, link-local, multicast, unspecified, CGNAT, documentation, benchmarking (Sandlot's node subnets,
//     198.18.0.0/15) and reserved ranges are refused, and so is anything in Config.Blocked;
//   - at most Config.MaxRedirects redirects, each checked like the first URL;
//   - at most Config.MaxSize bytes, within Config.Timeout in all and Config.FirstByte to the answer's headers;
//   - only a YAML mapping with a non-empty services mapping: a real parser decides, and nothing else of the file is
//     read. The bytes returned are those fetched, for the caller to hand to a node unchanged.
//
// Every refusal is an *Error with a code and a message meant for the person who clicked the link.
package stackfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error codes, as the HTTP API answers them.
const (
	CodeBadURL      = "bad_stack_url"      // not an http(s) URL, or one with credentials
	CodeRefused     = "stack_refused"      // the address (first or after a redirect) is not a public one
	CodeFetchFailed = "stack_fetch_failed" // no answer, a failed status, too many redirects
	CodeTimeout     = "stack_timeout"      // too slow to answer, or to send the file
	CodeTooLarge    = "stack_too_large"    // over MaxSize
	CodeNotCompose  = "not_compose"        // not YAML, or YAML without services
)

// Error is why a stack was not fetched: Code is one of the Code constants, Message says it to a person.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func fail(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Config tunes a Fetcher. Zero values mean the defaults.
type Config struct {
	MaxSize      int64         // bytes of a compose file; default 256 KiB
	Timeout      time.Duration // the whole fetch, redirects included; default 15 s
	FirstByte    time.Duration // from a request sent to its answer's headers; default 5 s
	MaxRedirects int           // default 5
	// Blocked are more addresses refused, besides every non-public range (say an image cache's address on a
	// public range, or node subnets moved out of 198.18.0.0/15).
	Blocked []netip.Prefix
	// AllowLoopback lets loopback addresses (127.0.0.0/8, ::1) through. It exists for tests, whose file servers
	// listen on loopback; a real deployment never sets it (the flag that does says so).
	AllowLoopback bool
}

// DefaultMaxSize is the largest compose file fetched by default.
const DefaultMaxSize = 256 << 10

func (c Config) withDefaults() Config {
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.FirstByte <= 0 {
		c.FirstByte = 5 * time.Second
	}
	if c.MaxRedirects <= 0 {
		c.MaxRedirects = 5
	}
	return c
}

// Fetcher fetches compose files under one policy. It is safe for concurrent use.
type Fetcher struct {
	cfg    Config
	client *http.Client
}

// New returns a Fetcher with cfg's policy.
func New(cfg Config) *Fetcher {
	cfg = cfg.withDefaults()
	f := &Fetcher{cfg: cfg}
	dialer := &net.Dialer{Timeout: cfg.FirstByte, Control: f.control}
	transport := &http.Transport{
		Proxy:                  nil, // never an environment's proxy: the address checked must be the one dialed
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    cfg.FirstByte,
		ResponseHeaderTimeout:  cfg.FirstByte,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 32 << 10,
	}
	f.client = &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return fail(CodeFetchFailed, "%s redirected more than %d times", via[0].URL.Host, cfg.MaxRedirects)
			}
			return f.checkURL(req.URL)
		}}
	return f
}

// Fetch fetches the compose file at rawURL and returns its bytes, or an *Error.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || (u.Scheme == "" && u.Host == "") {
		return nil, fail(CodeBadURL, "%q is not a URL of a compose file (like https://example.com/docker-compose.yml)", rawURL)
	}
	if err := f.checkURL(u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fail(CodeBadURL, "%q is not a URL of a compose file: %v", rawURL, err)
	}
	req.Header.Set("Accept", "application/yaml, text/yaml, text/plain, */*")
	req.Header.Set("User-Agent", "Sandlot (Try in Sandlot; fetches a compose file)")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, f.explain(u, err)
	}
	defer resp.Body.Close()
	host := resp.Request.URL.Host
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fail(CodeFetchFailed, "%s answered %s for the compose file", host, resp.Status)
	}
	if resp.ContentLength > f.cfg.MaxSize {
		return nil, f.tooLarge(host)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxSize+1))
	if err != nil {
		return nil, f.explain(resp.Request.URL, err)
	}
	if int64(len(data)) > f.cfg.MaxSize {
		return nil, f.tooLarge(host)
	}
	if err := CheckCompose(data); err != nil {
		return nil, err
	}
	return data, nil
}

func (f *Fetcher) tooLarge(host string) error {
	return fail(CodeTooLarge, "the compose file from %s is larger than %d KiB, the most Sandlot fetches", host, f.cfg.MaxSize>>10)
}

// checkURL refuses what is not http(s), has credentials, or names an address literally that would be refused
// anyway at the dial (said early, in a clearer way).
func (f *Fetcher) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail(CodeBadURL, "only http and https URLs are fetched, not %q", u.Scheme+":")
	}
	if u.User != nil {
		return fail(CodeBadURL, "a compose file's URL may not carry a user name or password")
	}
	if u.Hostname() == "" {
		return fail(CodeBadURL, "%q has no host name", u.String())
	}
	if addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		if why := f.refuse(addr); why != "" {
			return fail(CodeRefused, "%s is %s: Sandlot fetches compose files only from public addresses", u.Host, why)
		}
	}
	return nil
}

// control is the dialer's last word: it sees the address the connection goes to, after any resolution.
func (f *Fetcher) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fail(CodeRefused, "cannot check the address %q", address)
	}
	if why := f.refuse(ap.Addr()); why != "" {
		return fail(CodeRefused, "the compose file's host resolves to %s, %s: Sandlot fetches compose files only from public addresses",
			ap.Addr().Unmap(), why)
	}
	return nil
}

// nonPublic are the ranges that netip's predicates do not cover and that are not the public internet.
var nonPublic = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address (Sandlot's node subnets)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
}

// refuse says why addr may not be fetched from, or "" when it may.
func (f *Fetcher) refuse(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Zone() != "" {
		return "a scoped address"
	}
	for _, b := range f.cfg.Blocked { // first: a test's loopback allowance does not reach these
		if b.Contains(addr) {
			return "an address of this Sandlot (its node subnets or image cache)"
		}
	}
	switch {
	case addr.IsLoopback():
		if f.cfg.AllowLoopback {
			return ""
		}
		return "a loopback address"
	case addr.IsUnspecified():
		return "the unspecified address"
	case addr.IsLinkLocalUnicast():
		return "a link-local address"
	case addr.IsMulticast():
		return "a multicast address"
	case addr.IsPrivate():
		return "a private address"
	case !addr.IsGlobalUnicast():
		return "not a unicast address"
	}
	for _, n := range nonPublic {
		if n.prefix.Contains(addr) {
			return n.why
		}
	}
	return ""
}

// explain turns a failed request into an *Error: the policy's own refusal as it is, a timeout, or a failure.
func (f *Fetcher) explain(u *url.URL, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fail(CodeTimeout, "%s did not send the compose file in time (at most %s to answer, %s in all)",
			u.Host, f.cfg.FirstByte, f.cfg.Timeout)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fail(CodeFetchFailed, "the host %s of the compose file's URL is not known", u.Hostname())
	}
	return fail(CodeFetchFailed, "could not fetch the compose file from %s: %v", u.Host, unwrapURL(err))
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// CheckCompose accepts data only if it is text that parses as one YAML mapping whose services key is a non-empty
// mapping of mappings: what a compose file is at the least. It reads nothing else of the file.
func CheckCompose(data []byte) error {
	const hint = "a compose file (YAML with services)"
	if len(data) == 0 {
		return fail(CodeNotCompose, "the file is empty, not %s", hint)
	}
	if !utf8.Valid(data) || strings.ContainsRune(string(data), 0) {
		return fail(CodeNotCompose, "the file is not text, so not %s", hint)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fail(CodeNotCompose, "the file is not YAML, so not %s: %v", hint, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fail(CodeNotCompose, "the file is not a YAML mapping, so not %s", hint)
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "services" {
			continue
		}
		services := top.Content[i+1]
		if services.Kind != yaml.MappingNode || len(services.Content) == 0 {
			return fail(CodeNotCompose, "services is not a mapping of services, so the file is not %s", hint)
		}
		for j := 1; j < len(services.Content); j += 2 {
			svc := services.Content[j]
			if svc.Kind == yaml.AliasNode && svc.Alias != nil {
				svc = svc.Alias
			}
			if svc.Kind != yaml.MappingNode {
				return fail(CodeNotCompose, "service %q is not a mapping, so the file is not %s",
					services.Content[j-1].Value, hint)
			}
		}
		return nil
	}
	return fail(CodeNotCompose, "the file has no services, so it is not %s", hint)
}
