// Package quota decides, atomically in Redis, whether a client may start a session or a session may add a node:
// concurrent sessions and a creation rate per client, nodes per session, and the global capacity of the host.
//
// Every decision is one Lua script, so concurrent requests (from one Sandlot process or many on one Redis) can
// never together overshoot a limit. Counters move only inside those scripts, in pairs, so they cannot drift apart.
package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limits are the quotas. Zero values mean: use the default.
type Limits struct {
	SessionsPerClient  int // concurrent sessions of one client; default 5
	CreationsPerClient int // sessions one client may start per RateWindow; default 30
	// JoinsPerClient is how many times one address may join workshops per RateWindow; default 10 times
	// CreationsPerClient, since a whole room may sit behind one address.
	JoinsPerClient int
	// SessionsPerOrigin is how many sessions may run at once that were started anonymously from pages of one
	// listed origin (a documentation site): its readers together; default 50.
	SessionsPerOrigin   int
	RateWindow          time.Duration // default 1 h
	InstancesPerSession int           // nodes of one session; default 5
	Capacity            int           // nodes running on this host at once; required
	CapacityRetryAfter  time.Duration // what a client told "out of capacity" should wait; default 60 s
}

func (l Limits) withDefaults() Limits {
	if l.SessionsPerClient == 0 {
		l.SessionsPerClient = 5
	}
	if l.CreationsPerClient == 0 {
		l.CreationsPerClient = 30
	}
	if l.JoinsPerClient == 0 {
		l.JoinsPerClient = 10 * l.CreationsPerClient
	}
	if l.SessionsPerOrigin == 0 {
		l.SessionsPerOrigin = 50
	}
	if l.RateWindow == 0 {
		l.RateWindow = time.Hour
	}
	if l.InstancesPerSession == 0 {
		l.InstancesPerSession = 5
	}
	if l.CapacityRetryAfter == 0 {
		l.CapacityRetryAfter = time.Minute
	}
	return l
}

// Rejection is a refused request: a code for programs, a message for people, and when to try again.
type Rejection struct {
	Code       string // too_many_sessions, origin_quota, rate_limited, instance_quota, out_of_capacity
	Message    string
	RetryAfter time.Duration // zero when waiting will not help
}

func (r *Rejection) Error() string { return r.Message }

// The rejection codes.
const (
	CodeTooManySessions = "too_many_sessions"
	CodeOriginQuota     = "origin_quota"
	CodeRateLimited     = "rate_limited"
	CodeInstanceQuota   = "instance_quota"
	CodeOutOfCapacity   = "out_of_capacity"
)

// Quota makes admission decisions in Redis.
type Quota struct {
	rdb    redis.UniversalClient
	limits Limits
}

// New returns a Quota over rdb. Capacity must be positive.
func New(rdb redis.UniversalClient, limits Limits) (*Quota, error) {
	limits = limits.withDefaults()
	if limits.Capacity <= 0 {
		return nil, fmt.Errorf("quota: capacity must be positive, got %d", limits.Capacity)
	}
	return &Quota{rdb: rdb, limits: limits}, nil
}

// Limits are the limits in force.
func (q *Quota) Limits() Limits { return q.limits }

const prefix = "sandlot:quota:"

func clientSessionsKey(client string) string { return prefix + "client:" + client + ":sessions" }
func clientRateKey(client string) string     { return prefix + "client:" + client + ":starts" }
func sessionNodesKey(session string) string  { return prefix + "session:" + session + ":nodes" }
func sessionOriginKey(session string) string { return prefix + "session:" + session + ":origin" }

const (
	runningKey = prefix + "running"
	// originsKey is a hash: for each listed origin, how many sessions started from its pages run now. A session
	// counted there has its origin under sessionOriginKey, so that ending it gives its place back exactly once.
	originsKey = prefix + "origins"
)

// admitScript: KEYS client sessions set, client starts zset, session nodes counter, global running counter,
// session origin key, origins hash. ARGV session id, now (ms), window (ms), max sessions, max starts, nodes wanted,
// max nodes a session, capacity, origin ("" for none), max sessions of an origin.
// Returns {code, retry-after ms}; code "" is admitted.
var admitScript = redis.NewScript(`
local now, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local nodes, perSession, capacity = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local origin = ARGV[9]
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {'', 0} end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[4]) then return {'too_many_sessions', 0} end
if origin ~= '' and tonumber(redis.call('HGET', KEYS[6], origin) or '0') >= tonumber(ARGV[10]) then
  return {'origin_quota', 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'rate_limited', tonumber(oldest[2]) + window - now}
end
if nodes > perSession then return {'instance_quota', 0} end
local running = tonumber(redis.call('GET', KEYS[4]) or '0')
if running + nodes > capacity then return {'out_of_capacity', 0} end
local sessions = redis.call('SADD', KEYS[1], ARGV[1]) + redis.call('SCARD', KEYS[1]) - 1
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[2], window)
if nodes > 0 then
  redis.call('INCRBY', KEYS[3], nodes)
  running = redis.call('INCRBY', KEYS[4], nodes)
end
if origin ~= '' and redis.call('SET', KEYS[5], origin, 'NX') then
  redis.call('HINCRBY', KEYS[6], origin, 1)
end
return {'', 0, sessions, running}
`)

// AdmitSession admits a new session of client that will start with nodes nodes, reserving them, and returns what
// the client and session hold now. Admitting the same session again is a no-op. A refusal is a *Rejection.
func (q *Quota) AdmitSession(ctx context.Context, client, session string, nodes int) (Usage, error) {
	return q.AdmitSessionFrom(ctx, client, "", session, nodes)
}

// AdmitSessionFrom is AdmitSession for a session started anonymously from a page of a listed origin (none: ""):
// the origin's running sessions are bounded too (SessionsPerOrigin), in the same decision as the client's.
func (q *Quota) AdmitSessionFrom(ctx context.Context, client, origin, session string, nodes int) (Usage, error) {
	l := q.limits
	res, err := admitScript.Run(ctx, q.rdb,
		[]string{clientSessionsKey(client), clientRateKey(client), sessionNodesKey(session), runningKey,
			sessionOriginKey(session), originsKey},
		session, time.Now().UnixMilli(), l.RateWindow.Milliseconds(), l.SessionsPerClient, l.CreationsPerClient,
		nodes, l.InstancesPerSession, l.Capacity, origin, l.SessionsPerOrigin).Slice()
	if err != nil {
		return Usage{}, fmt.Errorf("quota: admit session: %w", err)
	}
	if err := q.rejection(res); err != nil {
		return Usage{}, err
	}
	u := Usage{Instances: nodes, MaxInstances: l.InstancesPerSession, MaxSessions: l.SessionsPerClient, Capacity: l.Capacity}
	if len(res) == 4 {
		sessions, _ := res[2].(int64)
		running, _ := res[3].(int64)
		u.ClientSessions, u.Running = int(sessions), int(running)
	}
	return u, nil
}

// OriginSessions is how many sessions started from pages of origin run now.
func (q *Quota) OriginSessions(ctx context.Context, origin string) (int, error) {
	n, err := q.rdb.HGet(ctx, originsKey, origin).Int()
	if err == redis.Nil {
		return 0, nil
	}
	return n, err
}

// seatScript: KEYS session nodes counter, global running counter. ARGV nodes wanted, max nodes a session,
// capacity. Returns {code, retry-after ms, 0, running}; code "" is admitted.
var seatScript = redis.NewScript(`
local nodes, perSession, capacity = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if nodes > perSession then return {'instance_quota', 0} end
local running = tonumber(redis.call('GET', KEYS[2]) or '0')
if running + nodes > capacity then return {'out_of_capacity', 0} end
if nodes > 0 then
  redis.call('INCRBY', KEYS[1], nodes)
  running = redis.call('INCRBY', KEYS[2], nodes)
end
return {'', 0, 0, running}
`)

// AdmitSeat admits a session a workshop gives one of its attendees (client names the workshop): it counts
// against the host's capacity and nodes per session, and, unlike AdmitSession, not against the client's sessions
// or creation rate, since a room of attendees behind one address holds its seats. A refusal is a *Rejection.
func (q *Quota) AdmitSeat(ctx context.Context, client, session string, nodes int) (Usage, error) {
	l := q.limits
	res, err := seatScript.Run(ctx, q.rdb, []string{sessionNodesKey(session), runningKey},
		nodes, l.InstancesPerSession, l.Capacity).Slice()
	if err != nil {
		return Usage{}, fmt.Errorf("quota: admit seat: %w", err)
	}
	if err := q.rejection(res); err != nil {
		return Usage{}, err
	}
	running, _ := res[3].(int64)
	return Usage{Instances: nodes, MaxInstances: l.InstancesPerSession, MaxSessions: l.SessionsPerClient,
		Capacity: l.Capacity, Running: int(running)}, nil
}

// joinScript: KEYS client joins zset. ARGV member, now (ms), window (ms), max joins. Returns {code, retry-after ms}.
var joinScript = redis.NewScript(`
local now, window = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'rate_limited', tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
return {'', 0}
`)

// AllowJoin counts one join of a workshop by client (an address) against its rate: JoinsPerClient per
// RateWindow. A refusal is a *Rejection (rate_limited).
func (q *Quota) AllowJoin(ctx context.Context, client, join string) error {
	l := q.limits
	res, err := joinScript.Run(ctx, q.rdb, []string{prefix + "client:" + client + ":joins"}, join,
		time.Now().UnixMilli(), l.RateWindow.Milliseconds(), l.JoinsPerClient).Slice()
	if err != nil {
		return fmt.Errorf("quota: join rate: %w", err)
	}
	err = q.rejection(res)
	var r *Rejection
	if errors.As(err, &r) {
		r.Message = fmt.Sprintf("%d joins from your address in the last %s, the most allowed; try again in %s",
			l.JoinsPerClient, l.RateWindow, r.RetryAfter.Round(time.Second))
	}
	return err
}

// reserveScript: KEYS session nodes counter, global running counter. ARGV max nodes a session, capacity.
var reserveScript = redis.NewScript(`
local mine = tonumber(redis.call('GET', KEYS[1]) or '0')
if mine >= tonumber(ARGV[1]) then return {'instance_quota', 0} end
local running = tonumber(redis.call('GET', KEYS[2]) or '0')
if running >= tonumber(ARGV[2]) then return {'out_of_capacity', 0} end
redis.call('INCR', KEYS[1])
redis.call('INCR', KEYS[2])
return {'', 0}
`)

// ReserveInstance reserves one more node for session, which may have at most max nodes (the deployment's
// InstancesPerSession when that is lower, or when max is 0). A refusal is a *Rejection.
func (q *Quota) ReserveInstance(ctx context.Context, session string, max int) error {
	if max <= 0 || max > q.limits.InstancesPerSession {
		max = q.limits.InstancesPerSession
	}
	res, err := reserveScript.Run(ctx, q.rdb, []string{sessionNodesKey(session), runningKey},
		max, q.limits.Capacity).Slice()
	if err != nil {
		return fmt.Errorf("quota: reserve node: %w", err)
	}
	err = q.rejection(res)
	var r *Rejection
	if errors.As(err, &r) && r.Code == CodeInstanceQuota {
		r.Message = fmt.Sprintf("this session may have at most %d nodes", max)
	}
	return err
}

// releaseScript: KEYS session nodes counter, global running counter. ARGV how many.
var releaseScript = redis.NewScript(`
local mine = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if n > mine then n = mine end
if n > 0 then
  redis.call('DECRBY', KEYS[1], n)
  local running = redis.call('DECRBY', KEYS[2], n)
  if running < 0 then redis.call('SET', KEYS[2], 0) end
end
if mine - n <= 0 then redis.call('DEL', KEYS[1]) end
return n
`)

// ReleaseInstance gives back one node of session.
func (q *Quota) ReleaseInstance(ctx context.Context, session string) error {
	return releaseScript.Run(ctx, q.rdb, []string{sessionNodesKey(session), runningKey}, 1).Err()
}

// endScript: KEYS session nodes counter, global running counter, client sessions set, session origin key,
// origins hash. ARGV session id.
var endScript = redis.NewScript(`
local mine = tonumber(redis.call('GET', KEYS[1]) or '0')
if mine > 0 then
  if redis.call('DECRBY', KEYS[2], mine) < 0 then redis.call('SET', KEYS[2], 0) end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
local origin = redis.call('GET', KEYS[4])
if origin then
  if redis.call('HINCRBY', KEYS[5], origin, -1) <= 0 then redis.call('HDEL', KEYS[5], origin) end
  redis.call('DEL', KEYS[4])
end
return mine
`)

// EndSession gives back everything session held: its place among its client's sessions and its origin's, and all
// its nodes.
func (q *Quota) EndSession(ctx context.Context, client, session string) error {
	err := endScript.Run(ctx, q.rdb, []string{sessionNodesKey(session), runningKey, clientSessionsKey(client),
		sessionOriginKey(session), originsKey}, session).Err()
	if err != nil {
		return fmt.Errorf("quota: end session: %w", err)
	}
	return nil
}

// Usage is what a session and its client hold, for the limits a client is shown.
type Usage struct {
	Instances      int `json:"instances"`
	MaxInstances   int `json:"max_instances"`
	ClientSessions int `json:"client_sessions"`
	MaxSessions    int `json:"max_sessions"`
	Running        int `json:"running"`
	Capacity       int `json:"capacity"`
}

// Usage reads what session and client hold now.
func (q *Quota) Usage(ctx context.Context, client, session string) (Usage, error) {
	pipe := q.rdb.Pipeline()
	mine := pipe.Get(ctx, sessionNodesKey(session))
	sessions := pipe.SCard(ctx, clientSessionsKey(client))
	running := pipe.Get(ctx, runningKey)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return Usage{}, fmt.Errorf("quota: usage: %w", err)
	}
	m, _ := mine.Int()
	r, _ := running.Int()
	return Usage{Instances: m, MaxInstances: q.limits.InstancesPerSession, ClientSessions: int(sessions.Val()),
		MaxSessions: q.limits.SessionsPerClient, Running: r, Capacity: q.limits.Capacity}, nil
}

func (q *Quota) rejection(res []any) error {
	code, _ := res[0].(string)
	if code == "" {
		return nil
	}
	retry, _ := res[1].(int64)
	l := q.limits
	r := &Rejection{Code: code, RetryAfter: time.Duration(retry) * time.Millisecond}
	switch code {
	case CodeTooManySessions:
		r.Message = fmt.Sprintf("you already have %d sessions running, the most allowed; end one to start another",
			l.SessionsPerClient)
	case CodeOriginQuota:
		r.Message = fmt.Sprintf("%d sessions started from this site run already, the most it may have at once; try again later",
			l.SessionsPerOrigin)
	case CodeRateLimited:
		r.Message = fmt.Sprintf("you started %d sessions in the last %s, the most allowed; try again in %s",
			l.CreationsPerClient, l.RateWindow, r.RetryAfter.Round(time.Second))
	case CodeInstanceQuota:
		r.Message = fmt.Sprintf("a session may have at most %d nodes", l.InstancesPerSession)
	case CodeOutOfCapacity:
		r.RetryAfter = l.CapacityRetryAfter
		r.Message = fmt.Sprintf("this Sandlot is full (%d nodes running); try again in a minute", l.Capacity)
	default:
		r.Message = "refused: " + code
	}
	return r
}
