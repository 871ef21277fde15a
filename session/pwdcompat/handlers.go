package pwdcompat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
)

// maxBody bounds the JSON and form bodies of PWD's calls (uploads aside): they are a few fields.
const maxBody = 64 << 10

type newSessionResponse struct {
	SessionID string `json:"session_id"`
	Hostname  string `json:"hostname"`
}

// newSession is PWD's POST / (a form: session-duration, stack, stack_name, image_name). An XMLHttpRequest (PWD's
// SDK says so with X-Requested-With) is answered with the session's id and the host to call; a plain form post
// is sent on to the session's Sandlot page, with the session's cookie.
func (p *compat) newSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			failWith(w, http.StatusBadRequest, "invalid", "the body must be a form (application/x-www-form-urlencoded): "+err.Error())
			return
		}
		if r.Form.Get("stack") != "" {
			failWith(w, http.StatusBadRequest, "invalid",
				"stacks are not started by POST / here; open /?stack=<url of the compose file> instead")
			return
		}
		req := session.CreateRequest{Client: p.cfg.ClientIP(r), Origin: p.listedOrigin(r)}
		if d := r.Form.Get("session-duration"); d != "" {
			dur, err := time.ParseDuration(d)
			if err != nil {
				failWith(w, http.StatusBadRequest, "invalid", fmt.Sprintf("session-duration %q (like \"90m\")", d))
				return
			}
			// A PWD page cannot be changed (its SDK always asks for 90m): more than this Sandlot allows is what it
			// allows, rather than a refusal that the SDK would not even show.
			req.Duration = min(dur, p.svc.MaxDuration())
		}
		created, err := p.svc.Create(r.Context(), req)
		if err != nil {
			p.fail(w, err)
			return
		}
		id := created.Session.ID
		if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
			respond(w, http.StatusOK, newSessionResponse{SessionID: p.pwdID(id), Hostname: r.Host})
			return
		}
		// Sandlot's own page of the session finds its token in the cookie (same site: this is a navigation).
		http.SetCookie(w, &http.Cookie{Name: "sandlot_" + id, Value: created.Token, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, Expires: created.Session.MaxExpiresAt})
		http.Redirect(w, r, "/s/"+id, http.StatusFound)
	})
}

func (p *compat) getSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s, err := p.svc.Get(r.Context(), id)
		if err == nil && s.State == session.StateEnded {
			err = fmt.Errorf("%w: session ended", session.ErrEnded)
		}
		if err != nil {
			p.fail(w, err)
			return
		}
		out := pwdSession{ID: p.pwdID(id), CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt,
			Ready: s.State == session.StateActive, Host: r.Host, Instances: map[string]*pwdInstance{}}
		for _, in := range s.Instances {
			out.Instances[in.Name] = p.instance(r, in)
		}
		respond(w, http.StatusOK, out)
	})
}

func (p *compat) closeSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ended, err := p.svc.End(r.Context(), r.PathValue("id"), session.EndDeleted, "")
		if err == nil && !ended {
			err = session.ErrNotFound // ended already, or never was: PWD's 404 either way
		}
		if err != nil {
			p.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// instanceConfig is PWD's body of POST /sessions/{id}/instances (its field names, as PWD's SDK sends them).
type instanceConfig struct {
	ImageName string `json:"ImageName"`
	Hostname  string `json:"Hostname"`
	Type      string `json:"type"`
}

func (p *compat) newInstance() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body instanceConfig
		if err := decode(w, r, &body, true); err != nil {
			p.fail(w, err)
			return
		}
		if body.Type != "" && body.Type != "linux" {
			failWith(w, http.StatusBadRequest, "invalid", fmt.Sprintf("instance type %q: only linux nodes here", body.Type))
			return
		}
		in, err := p.svc.AddInstance(r.Context(), r.PathValue("id"), body.Hostname)
		if err != nil {
			p.fail(w, err)
			return
		}
		respond(w, http.StatusOK, p.instance(r, in))
	})
}

func (p *compat) deleteInstance() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.svc.RemoveInstance(r.Context(), r.PathValue("id"), r.PathValue("name")); err != nil {
			p.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

type execRequest struct {
	Command []string `json:"command"`
}

type execResponse struct {
	StatusCode int `json:"status_code"`
}

func (p *compat) exec() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body execRequest
		if err := decode(w, r, &body, false); err != nil {
			p.fail(w, err)
			return
		}
		if len(body.Command) == 0 || body.Command[0] == "" {
			p.fail(w, fmt.Errorf("%w: command is required, like [\"sh\", \"-c\", \"...\"]", session.ErrInvalid))
			return
		}
		res, err := p.svc.Exec(r.Context(), r.PathValue("id"), r.PathValue("name"), body.Command, p.cfg.MaxExecOutput)
		if err != nil {
			p.fail(w, err)
			return
		}
		respond(w, http.StatusOK, execResponse{StatusCode: res.ExitCode})
	})
}

// upload is PWD's POST .../uploads: each file part of a multipart body is written to ?path= (default /root)
// under its own file name. Every part is read before any is written, so an upload over the limit writes nothing.
// PWD's ?url= (the server fetches a URL into the node) is not served: it is a server-side request to anywhere.
func (p *compat) upload() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("url") != "" {
			failWith(w, http.StatusBadRequest, "invalid", "uploads from a ?url= are not served here; send the file in the body")
			return
		}
		dir := r.URL.Query().Get("path")
		if dir == "" {
			dir = "/root"
		}
		dir, err := instance.CleanPath(dir)
		if err != nil {
			p.fail(w, fmt.Errorf("%w: path: %v", session.ErrInvalid, err))
			return
		}
		if media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || media != "multipart/form-data" {
			failWith(w, http.StatusBadRequest, "invalid", "the body must be multipart/form-data")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxUpload+maxBody)
		mr, err := r.MultipartReader()
		if err != nil {
			failWith(w, http.StatusBadRequest, "invalid", "the body must be multipart/form-data: "+err.Error())
			return
		}
		type file struct {
			path string
			data []byte
		}
		var files []file
		left := p.cfg.MaxUpload
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				p.fail(w, bodyError(err))
				return
			}
			name := part.FileName()
			if name == "" {
				continue
			}
			if name != path.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, "\x00/\\") {
				p.fail(w, fmt.Errorf("%w: file name %q", session.ErrInvalid, name))
				return
			}
			if len(files) >= 100 {
				p.fail(w, fmt.Errorf("%w: at most 100 files an upload", session.ErrInvalid))
				return
			}
			data, err := io.ReadAll(io.LimitReader(part, left+1))
			if err != nil {
				p.fail(w, bodyError(err))
				return
			}
			if left -= int64(len(data)); left < 0 {
				failWith(w, http.StatusRequestEntityTooLarge, "too_large",
					fmt.Sprintf("an upload may carry %d bytes of files", p.cfg.MaxUpload))
				return
			}
			files = append(files, file{path: path.Join(dir, name), data: data})
		}
		for _, f := range files {
			err := p.svc.WriteFile(r.Context(), r.PathValue("id"), r.PathValue("name"), f.path, int64(len(f.data)), bytes.NewReader(f.data))
			if err != nil {
				p.fail(w, err)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}

// setupConf is PWD's body of POST /sessions/{id}/setup.
type setupConf struct {
	Instances []setupInstance `json:"instances"`
}

type setupInstance struct {
	Image          string     `json:"image"`
	Hostname       string     `json:"hostname"`
	IsSwarmManager bool       `json:"is_swarm_manager"`
	IsSwarmWorker  bool       `json:"is_swarm_worker"`
	Type           string     `json:"type"`
	Run            [][]string `json:"run"`
}

// setup makes the nodes PWD's setup asks for in an empty session. A swarm (managers and workers) is formed by the
// Sandlot template of that shape; nodes outside a swarm keep the hostnames asked for. Then each node's run
// commands run in it, in order; the first that fails fails the setup.
func (p *compat) setup() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var conf setupConf
		if err := decode(w, r, &conf, false); err != nil {
			p.fail(w, err)
			return
		}
		id := r.PathValue("id")
		managers, workers := 0, 0
		for _, in := range conf.Instances {
			switch {
			case in.Type != "" && in.Type != "linux":
				p.fail(w, fmt.Errorf("%w: instance type %q: only linux nodes here", session.ErrInvalid, in.Type))
				return
			case in.IsSwarmManager && in.IsSwarmWorker:
				p.fail(w, fmt.Errorf("%w: %q is both a manager and a worker", session.ErrInvalid, in.Hostname))
				return
			case in.IsSwarmManager:
				managers++
			case in.IsSwarmWorker:
				workers++
			}
		}
		if len(conf.Instances) == 0 {
			p.fail(w, fmt.Errorf("%w: instances is required", session.ErrInvalid))
			return
		}
		tmpl := ""
		if managers > 0 {
			if managers+workers != len(conf.Instances) {
				p.fail(w, fmt.Errorf("%w: a swarm setup's instances must all be managers or workers", session.ErrInvalid))
				return
			}
			for _, t := range p.svc.Templates() {
				if t.Swarm && t.Managers == managers && t.Workers == workers {
					tmpl = t.Name
				}
			}
			if tmpl == "" {
				p.fail(w, fmt.Errorf("%w: no template forms a swarm of %d managers and %d workers (see GET /api/v1/templates)",
					session.ErrInvalid, managers, workers))
				return
			}
		}
		s, err := p.svc.Get(r.Context(), id)
		if err == nil && len(s.Instances) > 0 {
			err = fmt.Errorf("%w: the session has instances already", session.ErrConflict)
		}
		if err != nil {
			p.fail(w, err)
			return
		}
		var names []string
		if tmpl != "" {
			s, err := p.svc.Setup(r.Context(), id, tmpl)
			if err != nil {
				p.fail(w, err)
				return
			}
			// The template's nodes in order: managers first, as the setup lists them when it lists managers first.
			session.SortInstances(s.Instances)
			ms, ws := []int{}, []int{}
			for i, in := range conf.Instances {
				if in.IsSwarmManager {
					ms = append(ms, i)
				} else {
					ws = append(ws, i)
				}
			}
			names = make([]string, len(conf.Instances))
			for k, i := range append(ms, ws...) {
				if k < len(s.Instances) {
					names[i] = s.Instances[k].Name
				}
			}
		} else {
			for _, in := range conf.Instances {
				made, err := p.svc.AddInstance(r.Context(), id, in.Hostname)
				if err != nil {
					p.fail(w, err)
					return
				}
				names = append(names, made.Name)
			}
		}
		for i, in := range conf.Instances {
			for _, cmd := range in.Run {
				if len(cmd) == 0 || names[i] == "" {
					continue
				}
				res, err := p.svc.Exec(r.Context(), id, names[i], cmd, p.cfg.MaxExecOutput)
				if err == nil && res.ExitCode != 0 {
					err = fmt.Errorf("%w: %q on %s exited with %d", session.ErrInvalid, cmd, names[i], res.ExitCode)
				}
				if err != nil {
					p.fail(w, err)
					return
				}
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}

// decode reads a small JSON body into v; an empty body is v's zero value when empty is allowed.
func decode(w http.ResponseWriter, r *http.Request, v any, empty bool) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if empty {
			return nil
		}
		return fmt.Errorf("%w: the body must be JSON", session.ErrInvalid)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: the body is not the JSON this call takes: %v", session.ErrInvalid, err)
	}
	return nil
}

var errTooLarge = errors.New("the body is too large")

func bodyError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return errTooLarge
	}
	return fmt.Errorf("%w: reading the body: %v", session.ErrInvalid, err)
}

// fail answers err with PWD's status for it (its SDK looks at the status only) and Sandlot's error body.
func (p *compat) fail(w http.ResponseWriter, err error) {
	var rej *quota.Rejection
	switch {
	case errors.Is(err, errTooLarge):
		failWith(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrEnded):
		failWith(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, session.ErrInvalid):
		failWith(w, http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, session.ErrConflict):
		failWith(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, session.ErrTooManyExecs):
		failWith(w, http.StatusTooManyRequests, "too_many_execs", err.Error())
	case errors.As(err, &rej):
		if rej.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rej.RetryAfter.Seconds()))))
		}
		switch rej.Code {
		case quota.CodeInstanceQuota: // PWD's SDK reads 409 as "max instances reached"
			failWith(w, http.StatusConflict, rej.Code, rej.Message)
		case quota.CodeOutOfCapacity:
			failWith(w, http.StatusServiceUnavailable, rej.Code, rej.Message)
		default:
			failWith(w, http.StatusTooManyRequests, rej.Code, rej.Message)
		}
	default:
		p.log.Error("pwd-compat call failed", "err", err)
		failWith(w, http.StatusInternalServerError, "internal", "something went wrong")
	}
}

func respond(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func failWith(w http.ResponseWriter, status int, code, msg string) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	respond(w, status, body)
}
