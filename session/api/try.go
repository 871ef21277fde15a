package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/stackfetch"
)

// "Try in Sandlot": POST /api/v1/try {"stack": url} fetches a compose file (package stackfetch decides what may be
// fetched), starts a one-node swarm, writes the file into node1 unchanged and runs docker stack deploy there. The
// deploy's output goes into node1's first terminal, where the page shows it; the ports the stack publishes show
// as the node's ports, like any other.

// TryTemplate is the template a tried stack runs on.
const TryTemplate = "1-node-swarm"

// Where the stack goes in node1, and its name.
const (
	tryDir   = "/root/stack"
	tryFile  = tryDir + "/docker-compose.yml"
	tryStack = "try"
)

type tryRequest struct {
	Stack string `json:"stack"` // the compose file's http(s) URL
}

// tryResponse is the session made, with the stack's deploy.
type tryResponse struct {
	sessionView
	Deploy stackDeploy `json:"deploy"`
}

// stackDeploy is what docker stack deploy did in the node.
type stackDeploy struct {
	URL      string `json:"url"`       // the compose file's
	Node     string `json:"node"`      // where it was deployed
	File     string `json:"file"`      // the compose file's path in the node
	Stack    string `json:"stack"`     // the stack's name
	ExitCode int    `json:"exit_code"` // docker stack deploy's: not 0, the stack is not (fully) deployed; the session lives on
	Output   string `json:"output"`    // what it printed (stdout and stderr)
}

func (a *api) tryStack() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req tryRequest
		if err := decode(w, r, &req); err != nil {
			fail(w, a.log, err)
			return
		}
		if strings.TrimSpace(req.Stack) == "" {
			failWith(w, http.StatusBadRequest, stackfetch.CodeBadURL, "stack is required: the URL of a compose file")
			return
		}
		client := a.clientIP(r)
		release, wait := a.fetches.acquire(client)
		if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second).Seconds())+1))
			failWith(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf(
				"%d stacks fetched from your address in the last %s, or one is being fetched; try again in %s",
				a.fetches.max, a.fetches.window, wait.Round(time.Second)))
			return
		}
		data, err := a.stacks.Fetch(r.Context(), req.Stack)
		release()
		if err != nil {
			failStack(w, a.log, err)
			return
		}
		created, err := a.svc.Create(r.Context(), session.CreateRequest{Template: TryTemplate, Client: client})
		if err != nil {
			fail(w, a.log, err)
			return
		}
		a.setSessionCookie(w, created)
		id := created.Session.ID
		deploy, err := a.deploy(r.Context(), id, data)
		deploy.URL = req.Stack
		if err != nil {
			// The session lives on (its holder may try by hand); what failed is said, with the session's id.
			a.log.Warn("try: deploy a stack", "session", id, "err", err)
			deploy.ExitCode, deploy.Output = -1, "Sandlot could not deploy the stack: "+err.Error()
		}
		s, err := a.svc.Get(r.Context(), id)
		if err != nil {
			s = created.Session
		}
		respond(w, http.StatusCreated, tryResponse{sessionView: a.view(r.Context(), s, created.Token, created.Usage),
			Deploy: deploy})
	})
}

// deploy writes the compose file into node1, deploys it, and types into node1's first terminal what shows the
// result there. The file's bytes are handed over as fetched; Sandlot reads nothing of them.
func (a *api) deploy(ctx context.Context, id string, data []byte) (stackDeploy, error) {
	d := stackDeploy{Node: "node1", File: tryFile, Stack: tryStack}
	if err := a.svc.WriteFile(ctx, id, d.Node, tryFile, int64(len(data)), bytes.NewReader(data)); err != nil {
		return d, fmt.Errorf("write %s: %w", tryFile, err)
	}
	// --resolve-image never: tasks pull through the node's mirror (the image cache) rather than each deploy asking
	// Docker Hub for digests, which one node does not need to agree on.
	res, err := a.svc.Exec(ctx, id, d.Node, []string{"sh", "-c",
		`cd "$1" && docker stack deploy --resolve-image never -c "$2" "$3" >deploy.log 2>&1; code=$?; cat deploy.log; exit $code`,
		"_", tryDir, tryFile, tryStack}, a.cfg.MaxExecOutput)
	if err != nil {
		return d, fmt.Errorf("run docker stack deploy: %w", err)
	}
	d.ExitCode, d.Output = res.ExitCode, string(res.Stdout)+string(res.Stderr)
	// Shown where the learner looks: the deploy's output, then the stack's services. Two short lines: the shell's
	// terminal is 80 columns until the page connects, and a line that wrapped there shows garbled at its width.
	show := fmt.Sprintf("cd %s\ncat deploy.log; docker stack services %s\n", tryDir, tryStack)
	if err := a.svc.TypeInto(ctx, id, d.Node, show); err != nil {
		a.log.Warn("try: show the deploy in the terminal", "session", id, "err", err)
	}
	return d, nil
}

// failStack answers a refused or failed fetch with the fetcher's code and message.
func failStack(w http.ResponseWriter, log interface{ Error(string, ...any) }, err error) {
	var e *stackfetch.Error
	if !errors.As(err, &e) {
		log.Error("try: fetch a stack", "err", err)
		failWith(w, http.StatusBadGateway, stackfetch.CodeFetchFailed, "could not fetch the compose file")
		return
	}
	status := map[string]int{
		stackfetch.CodeBadURL:      http.StatusBadRequest,
		stackfetch.CodeRefused:     http.StatusForbidden,
		stackfetch.CodeFetchFailed: http.StatusBadGateway,
		stackfetch.CodeTimeout:     http.StatusGatewayTimeout,
		stackfetch.CodeTooLarge:    http.StatusRequestEntityTooLarge,
		stackfetch.CodeNotCompose:  http.StatusUnprocessableEntity,
	}[e.Code]
	if status == 0 {
		status = http.StatusBadGateway
	}
	failWith(w, status, e.Code, e.Message)
}

// fetchLimit bounds the stacks one client address fetches: one at a time, and max per window. It is per process:
// a deployment of several servers lets a client fetch that many times more, which the session quota (kept in
// Redis) bounds in turn for fetches that go on to a session.
type fetchLimit struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	starts map[string][]time.Time // client -> its fetches' starts within the window, oldest first
	busy   map[string]bool        // client -> a fetch of it runs
}

func newFetchLimit(max int, window time.Duration) *fetchLimit {
	return &fetchLimit{max: max, window: window, starts: map[string][]time.Time{}, busy: map[string]bool{}}
}

// acquire starts a fetch for client, or says how long to wait. release ends the fetch.
func (l *fetchLimit) acquire(client string) (release func(), wait time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.starts) > 10000 { // forget clients whose window has passed, now and then
		for c, s := range l.starts {
			if len(s) == 0 || now.Sub(s[len(s)-1]) > l.window {
				delete(l.starts, c)
			}
		}
	}
	s := l.starts[client]
	for len(s) > 0 && now.Sub(s[0]) > l.window {
		s = s[1:]
	}
	l.starts[client] = s
	if l.busy[client] {
		return nil, time.Second
	}
	if len(s) >= l.max {
		return nil, l.window - now.Sub(s[0])
	}
	l.starts[client] = append(s, now)
	l.busy[client] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.busy, client)
			l.mu.Unlock()
		})
	}, 0
}
