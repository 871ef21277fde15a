package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sandlot/sandlot/internal/testengine"
	"github.com/sandlot/sandlot/internal/testimages"
)

// tryCompose is a stack of one service whose image nodes pull through the image cache from the test upstream. Its
// port is published in host mode and its endpoint is dnsrr: these hosts have no IPVS, so no routing mesh.
const tryCompose = `version: "3.8"
services:
  web:
    image: web:1
    ports:
      - target: 80
        published: 8080
        mode: host
    deploy:
      endpoint_mode: dnsrr
`

// stackFiles serves compose files, good and bad, on loopback.
func stackFiles(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/docker-compose.yml", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tryCompose) })
	mux.HandleFunc("/to-private", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://10.9.8.7/docker-compose.yml", http.StatusFound)
	})
	mux.HandleFunc("/to-node", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://198.18.0.11:8080/", http.StatusFound)
	})
	mux.HandleFunc("/big.yml", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, tryCompose+"#"+strings.Repeat("x", 300<<10)+"\n")
	})
	mux.HandleFunc("/slow.yml", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/readme.html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html>\n<html><body><h1>My app</h1></body></html>\n")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type tried struct {
	ID        string `json:"id"`
	Token     string `json:"token"`
	Template  string `json:"template"`
	Instances []struct {
		Name  string `json:"name"`
		Ports []int  `json:"ports"`
	} `json:"instances"`
	Deploy struct {
		Node, File, Stack, Output string
		ExitCode                  int `json:"exit_code"`
	} `json:"deploy"`
	Error struct{ Code, Message string } `json:"error"`
}

func try(t *testing.T, srv *proc, stack string) (int, tried) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"stack": stack})
	resp, err := http.Post(srv.url+"/api/v1/try", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out tried
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// Try in Sandlot: a compose file served on loopback (allowed by the test flag) is deployed in a one-node swarm;
// its service runs, answers on its published port, and the port shows on node1. The refusals say why.
func TestTryStack(t *testing.T) {
	needEngine(t)
	files := stackFiles(t)
	mirror := testengine.MirrorPort(t)
	up := testimages.NewUpstream(t)
	up.Push("library/web:1", must(testimages.Web("deployed by try"))(t))
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String(), "--stack-allow-loopback")

	start := time.Now()
	status, s := try(t, srv, files.URL+"/docker-compose.yml")
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/try: %d %+v", status, s.Error)
	}
	t.Cleanup(func() { deleteSession(t, srv.url, s.ID) })
	t.Logf("try answered in %s: %+v", time.Since(start).Round(time.Millisecond), s.Deploy)
	if s.Template != "1-node-swarm" || s.Deploy.ExitCode != 0 || !strings.Contains(s.Deploy.Output, "Creating service try_web") {
		t.Fatalf("the deploy: template %q, %+v", s.Template, s.Deploy)
	}
	l := &lab{url: srv.url, ID: s.ID, Token: s.Token}
	l.expect(t, "node1", tryCompose, "cat", "/root/stack/docker-compose.yml")
	waitServing(t, l)
	waitFor(t, 30*time.Second, "port 8080 to show on node1", func() bool {
		var got tried
		getJSON(t, srv.url+"/api/v1/sessions/"+s.ID, s.Token, &got)
		return len(got.Instances) == 1 && slices.Contains(got.Instances[0].Ports, 8080)
	})
	// The terminal was typed what shows the deploy: its shell is in the stack's directory.
	res := l.must(t, "node1", "sh", "-c", "ls /root/stack")
	if !strings.Contains(res.Stdout, "deploy.log") {
		t.Errorf("no deploy.log in /root/stack: %q", res.Stdout)
	}

	for _, tt := range []struct {
		name, url string
		status    int
		code, msg string
	}{
		{"a redirect to a private address", files.URL + "/to-private", 403, "stack_refused", "10.9.8.7 is a private address"},
		{"a redirect to a node's address", files.URL + "/to-node", 403, "stack_refused", "an address of this Sandlot"},
		{"an oversized file", files.URL + "/big.yml", 413, "stack_too_large", "larger than 256 KiB"},
		{"a slow server", files.URL + "/slow.yml", 504, "stack_timeout", "did not send the compose file in time"},
		{"an HTML page", files.URL + "/readme.html", 422, "not_compose", "not a compose file"},
		{"not http", "file:///etc/passwd", 400, "bad_stack_url", "only http and https"},
	} {
		status, got := try(t, srv, tt.url)
		if status != tt.status || got.Error.Code != tt.code || !strings.Contains(got.Error.Message, tt.msg) {
			t.Errorf("%s: %d %+v; want %d %s with %q", tt.name, status, got.Error, tt.status, tt.code, tt.msg)
		}
	}

	// By default, loopback is refused, by address and by a name that resolves to it.
	strict := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	for _, u := range []string{files.URL + "/docker-compose.yml", strings.Replace(files.URL, "127.0.0.1", "localhost", 1) + "/docker-compose.yml"} {
		status, got := try(t, strict, u)
		if status != 403 || got.Error.Code != "stack_refused" || !strings.Contains(got.Error.Message, "loopback address") {
			t.Errorf("default server, %s: %d %+v", u, status, got.Error)
		}
	}
}

// The README's button is served for any page to show.
func TestTryButton(t *testing.T) {
	needEngine(t)
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin)
	resp, err := http.Get(srv.url + "/assets/try-in-sandlot.svg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(string(body), "Try in Sandlot") {
		t.Fatalf("GET /assets/try-in-sandlot.svg: %s %q %.80q", resp.Status, resp.Header.Get("Content-Type"), body)
	}
}

// waitServing waits until the stack's service answers on node1's port 8080; if it does not, the task's story fails
// the test.
func waitServing(t *testing.T, l *lab) {
	t.Helper()
	deadline := time.Now().Add(150 * time.Second)
	for {
		res, err := l.run("node1", "wget", "-qO-", "-T", "2", "http://127.0.0.1:8080/")
		if err == nil && res.Stdout == "deployed by try\n" {
			return
		}
		if time.Now().After(deadline) {
			ps := l.exec(t, "node1", "sh", "-c", "docker service ps --no-trunc try_web; docker ps -a; docker images; tail -n 30 /var/log/dockerd.log 2>/dev/null")
			t.Fatalf("the stack's service does not answer on 8080: %+v %v\n%s%s", res, err, ps.Stdout, ps.Stderr)
		}
		time.Sleep(time.Second)
	}
}

func getJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// In a browser: an old "Try in PWD" link with only its host changed (/?stack=<url>) opens a session whose node1
// terminal shows the deploy and the stack's services, and whose node shows the published port; a file that is not
// a compose file (at /try?stack=) is refused on the landing page with the reason.
func TestBrowserTryStack(t *testing.T) {
	needEngine(t)
	files := stackFiles(t)
	mirror := testengine.MirrorPort(t)
	up := testimages.NewUpstream(t)
	up.Push("library/web:1", must(testimages.Web("deployed by try"))(t))
	srv := startServer(t, "--data", t.TempDir(), "--admin-token", admin, "--image-upstream", up.URL(),
		"--image-cache-listen", mirror.String(), "--stack-allow-loopback")
	p := newPage(t, srv.url)
	p.do("open a Try in PWD link", chromedp.Navigate(srv.url+"/?stack="+url.QueryEscape(files.URL+"/docker-compose.yml")))
	p.waitJS("the trying notice", `!!document.querySelector("p.trying") || location.pathname.startsWith("/s/")`, 10*time.Second)
	p.waitJS("the session page", `location.pathname.startsWith("/s/") && !!document.querySelector("sl-session .bar")`, 60*time.Second)
	id := sessionIDOf(p)
	t.Cleanup(func() { deleteSession(t, srv.url, id) })
	p.waitScreen("node1", 1, `Creating service try_web`, 30*time.Second)
	p.waitScreen("node1", 1, `try_web +replicated +[01]/1 +web:1`, 30*time.Second)
	waitServing(t, &lab{url: srv.url, ID: id, Token: admin})
	p.waitJS("the port badge", `!!document.querySelector('li.node[data-node="node1"] span.port[data-port="8080"]')`, 30*time.Second)
	p.screenshot("try-stack")

	p.do("try an HTML page", chromedp.Navigate(srv.url+"/try?stack="+url.QueryEscape(files.URL+"/readme.html")))
	p.waitJS("the refusal", `(document.querySelector("sl-landing p.error")?.innerText ?? "").includes("not a compose file")`, 20*time.Second)
	if got := p.text("sl-landing p.error"); !strings.Contains(got, files.URL+"/readme.html") {
		t.Errorf("the refusal does not name the URL: %q", got)
	}
}
