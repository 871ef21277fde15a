package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/instance"
	"github.com/sandlot/sandlot/internal/testengine"
	"github.com/sandlot/sandlot/quota"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/labproxy"
	"github.com/sandlot/sandlot/session/redisstore"
	"github.com/sandlot/sandlot/session/templates"
	"github.com/sandlot/sandlot/session/workshop"
	"github.com/sandlot/sandlot/terminal"
)

// These tests run against a private redis-server and the real Docker engine with the node image. Without an
// engine they are skipped, unless SANDLOT_REQUIRE_DOCKER=1 (as `make test` sets), when they fail.

const (
	testAdmin         = "admin-token-for-tests-0123456789"
	testIntegratorKid = "docs"
)

var testIntegratorSecret = []byte("integrator-secret-for-tests-0123456789")

var sharedDriver *instance.Driver

// testOwner owns everything these tests make: their servers' GC never touches what other packages' tests (or a
// developer's server) make meanwhile.
var testOwner = "session-tests-" + randomHex(4)

// TestMain closes the shared driver at the end, which removes its netfault helper (if a test applied faults).
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDriver != nil {
		sharedDriver.Close()
	}
	os.Exit(code)
}

// driver is one instance driver (bridge networks) for the whole test binary.
func driver(t testing.TB) *instance.Driver {
	t.Helper()
	testengine.Skip(t)
	if sharedDriver != nil {
		return sharedDriver
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One owner for this test binary: its servers' GC never touches what other packages' tests make meanwhile.
	d, err := instance.New(ctx, instance.Config{Network: instance.NetworkBridge, Owner: testOwner,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		if os.Getenv("SANDLOT_REQUIRE_DOCKER") != "1" && (errorsIs(err, instance.ErrEngineUnreachable) || errorsIs(err, instance.ErrImageMissing)) {
			t.Skipf("no engine: %v", err)
		}
		t.Fatal(err)
	}
	sharedDriver = d
	return d
}

// server is one Sandlot "process": service, reaper and HTTP API, on a Redis it may share with others.
type server struct {
	t       testing.TB
	URL     string
	svc     *session.Service
	ws      *workshop.Service
	store   *redisstore.Store
	rdb     *redis.Client
	tokens  *session.Tokens
	quota   *quota.Quota
	metrics *session.Metrics
	stop    func()
}

type serverOpts struct {
	limits quota.Limits
	cfg    session.Config
	api    Config
	nodes  session.Nodes // default: the real engine's (driver)
	extra  templates.Set // templates besides the embedded ones
}

func newServer(t testing.TB, rdb *redis.Client, o serverOpts) *server {
	t.Helper()
	nodes := o.nodes
	if nodes == nil {
		nodes = session.EngineNodes(driver(t))
	}
	if o.limits.Capacity == 0 {
		o.limits.Capacity = 20
	}
	q, err := quota.New(rdb, o.limits)
	if err != nil {
		t.Fatal(err)
	}
	store := redisstore.New(rdb, 24*time.Hour)
	key, err := store.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := session.NewTokens(key, map[string][]byte{testIntegratorKid: testIntegratorSecret}, testAdmin)
	if err != nil {
		t.Fatal(err)
	}
	tmpls, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(tmpls, o.extra)
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	metrics := session.NewMetrics(nil, store, q)
	svc := session.NewService(o.cfg, session.Deps{Store: store, Quota: q, Nodes: nodes, Templates: tmpls,
		Tokens: tokens, Terminals: terminal.NewManager(terminal.Options{}, 0), Metrics: metrics, Log: log})
	ws := workshop.New(redisstore.NewWorkshops(rdb), svc, q, log)
	proxy := labproxy.New(svc, labproxy.Config{}, log)
	ts := httptest.NewServer(NewHandler(svc, ws, proxy, o.api, log))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); svc.RunReaper(ctx) }()
	go func() { defer func() { done <- struct{}{} }(); ws.Run(ctx) }()
	<-ws.Ready()
	s := &server{t: t, URL: ts.URL, svc: svc, ws: ws, store: store, rdb: rdb, tokens: tokens, quota: q, metrics: metrics}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		ts.Close()
		cancel()
		<-done
		<-done
	}
	t.Cleanup(func() {
		s.stop()
		// End whatever the test left live, so that no node outlives it.
		ids, _ := store.Live(context.Background())
		for _, id := range ids {
			_, _ = svc.End(context.Background(), id, session.EndAdmin, "test cleanup")
		}
	})
	return s
}

// call makes an API request and decodes a JSON answer into out (if not nil). It returns the response.
func (s *server) call(method, path, token string, body any, out any) *http.Response {
	s.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

// mustCall is call that fails the test unless the status is want.
func (s *server) mustCall(want int, method, path, token string, body any, out any) *http.Response {
	s.t.Helper()
	resp := s.call(method, path, token, body, nil)
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

// created is what POST /api/v1/sessions answers.
type created struct {
	session.Session
	Token  string `json:"token"`
	Limits limits `json:"limits"`
}

func (s *server) create(body any) created {
	s.t.Helper()
	var c created
	s.mustCall(http.StatusCreated, "POST", "/api/v1/sessions", "", body, &c)
	return c
}

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func errorsIs(err, target error) bool {
	return err != nil && strings.Contains(err.Error(), target.Error())
}

// testLog sends the server's warnings and errors to the test's log.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// metric is the series of the metric name with label value (or the only series, when value is "").
func metric(t testing.TB, m *session.Metrics, name, value string) *dto.Metric {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, series := range f.GetMetric() {
			if value == "" || len(series.GetLabel()) > 0 && series.GetLabel()[0].GetValue() == value {
				return series
			}
		}
	}
	return &dto.Metric{}
}
