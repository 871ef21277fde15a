package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/session"
)

// The warm pool's keys, beside those of Store:
//
//	sandlot:pool:TEMPLATE     list of the template's pooled sessions ready to be claimed, oldest first
//	sandlot:pooled:TEMPLATE   set of the template's pooled sessions, ready or still being set up
//	sandlot:pool-templates    set of the templates that have (or had) pooled sessions
//
// A pooled session is also a session like any other (record, instances, sandlot:live), so that the collector
// leaves its nodes alone; it is on no deadline list until it is claimed. The claim script finds its records by
// name (sandlot:session:ID), so these scripts need a single Redis, not a cluster.
const keyPoolTemplates = "sandlot:pool-templates"

func keyPool(template string) string   { return "sandlot:pool:" + template }
func keyPooled(template string) string { return "sandlot:pooled:" + template }

var _ session.PoolStore = (*Store)(nil)

// createPooled stores a pooled session in setup, unless the template has most already. KEYS record, live,
// starting, setup lease, pooled set, pool templates. ARGV record, id, most, lease ms, template. Returns 1 if
// stored, 0 if the pool is full.
var createPooled = redis.NewScript(`
if redis.call('SCARD', KEYS[5]) >= tonumber(ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return redis.error_reply('exists') end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
redis.call('SADD', KEYS[5], ARGV[2])
redis.call('SADD', KEYS[6], ARGV[5])
return 1
`)

// CreatePooled stores a new session for the pool of its template (starting, with a setup lease of setupLease,
// no deadline) unless the template has most pooled sessions already, counting those in setup, whichever process
// makes them. It reports whether it stored it.
func (s *Store) CreatePooled(ctx context.Context, sess session.Session, most int, setupLease time.Duration) (bool, error) {
	sess.Instances = nil
	data, err := json.Marshal(sess)
	if err != nil {
		return false, err
	}
	n, err := createPooled.Run(ctx, s.rdb, []string{keyRecord(sess.ID), keyLive, keyStarting, keySetup(sess.ID),
		keyPooled(sess.Template), keyPoolTemplates}, data, sess.ID, most, setupLease.Milliseconds(), sess.Template).Int()
	if err != nil {
		return false, fmt.Errorf("store pooled session %s: %w", sess.ID, err)
	}
	return n == 1, nil
}

// poolReady makes a pooled session in setup ready. KEYS record, starting, pool list. ARGV id.
var poolReady = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return redis.error_reply('missing') end
local rec = cjson.decode(data)
if rec.state ~= 'starting' then return redis.error_reply('state') end
rec.state = 'pooled'
redis.call('SET', KEYS[1], cjson.encode(rec), 'KEEPTTL')
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1
`)

// PoolReady marks a pooled session whose setup is done ready to be claimed (ErrConflict unless it is starting:
// it was ended meanwhile).
func (s *Store) PoolReady(ctx context.Context, id, template string) error {
	err := poolReady.Run(ctx, s.rdb, []string{keyRecord(id), keyStarting, keyPool(template)}, id).Err()
	switch {
	case err == nil:
		return nil
	case reply(err) == "missing":
		return fmt.Errorf("%w: session %s", session.ErrNotFound, id)
	case reply(err) == "state":
		return fmt.Errorf("%w: pooled session %s is no longer being set up", session.ErrConflict, id)
	}
	return fmt.Errorf("pooled session %s ready: %w", id, err)
}

// claimPooled gives the oldest ready pooled session to a client. KEYS pool list, pooled set, deadlines. ARGV
// client, created_at, expires_at, max_expires_at, max_instances, deadline ms, workshop (or ""). Returns the
// record as claimed, or nil when none is ready. Entries whose session is no longer pooled (ended meanwhile) are dropped on the way.
var claimPooled = redis.NewScript(`
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return false end
  local key = 'sandlot:session:' .. id
  local data = redis.call('GET', key)
  redis.call('SREM', KEYS[2], id)
  if data then
    local rec = cjson.decode(data)
    if rec.state == 'pooled' then
      rec.state = 'active'
      rec.client = ARGV[1]
      rec.created_at = ARGV[2]
      rec.expires_at = ARGV[3]
      rec.max_expires_at = ARGV[4]
      rec.max_instances = tonumber(ARGV[5])
      if ARGV[7] ~= '' then rec.workshop_id = ARGV[7] end
      local out = cjson.encode(rec)
      redis.call('SET', key, out, 'KEEPTTL')
      redis.call('ZADD', KEYS[3], ARGV[6], id)
      return out
    end
  end
end
`)

// ClaimPooled gives the oldest ready pooled session of template to c.Client: active from now, with c's times
// and deadline. Only one caller, of any process on this Redis, ever gets a given session; ok is false when none
// is ready.
func (s *Store) ClaimPooled(ctx context.Context, template string, c session.PoolClaim) (session.Session, bool, error) {
	var sess session.Session
	res, err := claimPooled.Run(ctx, s.rdb, []string{keyPool(template), keyPooled(template), keyDeadlines},
		c.Client, stamp(c.CreatedAt), stamp(c.ExpiresAt), stamp(c.MaxExpiresAt), c.MaxInstances,
		c.ExpiresAt.UnixMilli(), c.Workshop).Text()
	if errors.Is(err, redis.Nil) {
		return sess, false, nil
	}
	if err != nil {
		return sess, false, fmt.Errorf("claim a pooled %s session: %w", template, err)
	}
	if err := json.Unmarshal([]byte(res), &sess); err != nil {
		return sess, false, fmt.Errorf("decode claimed session: %w", err)
	}
	return sess, true, nil
}

// unclaim puts a claimed session back at the head of its pool. KEYS record, pool list, pooled set, deadlines.
// ARGV id, client. Returns 1 if it did, 0 if the session is no longer that client's active one.
var unclaim = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return 0 end
local rec = cjson.decode(data)
if rec.state ~= 'active' or rec.client ~= ARGV[2] then return 0 end
rec.state = 'pooled'
rec.client = nil
rec.workshop_id = nil
redis.call('SET', KEYS[1], cjson.encode(rec), 'KEEPTTL')
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
`)

// Unclaim puts a session just claimed for client back in its pool, before anyone was given its token (the
// client was refused by quota). It reports whether it did.
func (s *Store) Unclaim(ctx context.Context, id, template, client string) (bool, error) {
	n, err := unclaim.Run(ctx, s.rdb, []string{keyRecord(id), keyPool(template), keyPooled(template), keyDeadlines},
		id, client).Int()
	return n == 1, err
}

// takePooled takes a ready pooled session out of its pool to end it, with a deadline of now so that the reaper
// ends it should the taker die. KEYS pool list, pooled set, deadlines. ARGV id, now ms.
var takePooled = redis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
`)

// TakePooled takes a ready pooled session of template out of its pool, for the caller to end it. Only one caller
// gets true; a session claimed meanwhile is not taken.
func (s *Store) TakePooled(ctx context.Context, template, id string) (bool, error) {
	n, err := takePooled.Run(ctx, s.rdb, []string{keyPool(template), keyPooled(template), keyDeadlines}, id,
		time.Now().UnixMilli()).Int()
	return n == 1, err
}

// pooled lists a template's pooled sessions and forgets those no longer live. KEYS pooled set, pool list, live.
// Returns {ready (oldest first), in setup}.
var pooled = redis.NewScript(`
local ready, setup, listed = {}, {}, {}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if redis.call('SISMEMBER', KEYS[1], id) == 1 and redis.call('SISMEMBER', KEYS[3], id) == 1 then
    table.insert(ready, id)
    listed[id] = true
  else
    redis.call('LREM', KEYS[2], 0, id)
  end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('SISMEMBER', KEYS[3], id) == 0 then
    redis.call('SREM', KEYS[1], id)
  elseif not listed[id] then
    table.insert(setup, id)
  end
end
return {ready, setup}
`)

// Pooled lists a template's pooled sessions, ready (oldest first) and still in setup, after forgetting those
// that ended.
func (s *Store) Pooled(ctx context.Context, template string) (ready, setup []string, err error) {
	res, err := pooled.Run(ctx, s.rdb, []string{keyPooled(template), keyPool(template), keyLive}).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("list pooled %s sessions: %w", template, err)
	}
	strs := func(v any) []string {
		var out []string
		list, _ := v.([]any)
		for _, x := range list {
			if id, ok := x.(string); ok {
				out = append(out, id)
			}
		}
		return out
	}
	return strs(res[0]), strs(res[1]), nil
}

// PoolTemplates lists the templates that have had pooled sessions.
func (s *Store) PoolTemplates(ctx context.Context) ([]string, error) {
	return s.rdb.SMembers(ctx, keyPoolTemplates).Result()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
