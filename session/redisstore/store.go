// Package redisstore keeps Sandlot's sessions in Redis: the session.Store that every Sandlot process of a
// deployment shares, with every change of state one Lua script.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/session"
)

// Store keeps sessions in Redis. Keys:
//
//	sandlot:session:ID            the session record (JSON, without its nodes); kept 24 h after it ended
//	sandlot:session:ID:instances  hash: node name -> session.Instance (JSON)
//	sandlot:live                  set of sessions not ended
//	sandlot:deadlines             sorted set: session -> deadline (unix ms)
//	sandlot:starting              set of sessions whose template is being set up
//	sandlot:setup:ID              lease of the process setting a session up (expires if it dies)
//	sandlot:ending                sorted set: session -> lease (unix ms) of the process tearing it down
//
//	sandlot:signing-key           the key session tokens are signed with (see SigningKey)
//	sandlot:deployment            the deployment's name for what it makes on the engine (see Owner)
//
// Every change of state is one Lua script or one MULTI transaction, so several Sandlot processes on one Redis never
// end a session twice nor see half of a change.
type Store struct {
	rdb       redis.UniversalClient
	retention time.Duration // how long an ended session stays readable
}

const (
	keyLive      = "sandlot:live"
	keyDeadlines = "sandlot:deadlines"
	keyStarting  = "sandlot:starting"
	keyEnding    = "sandlot:ending"
	keyKey       = "sandlot:signing-key"
	keyOwner     = "sandlot:deployment"
)

func keyRecord(id string) string    { return "sandlot:session:" + id }
func keyInstances(id string) string { return "sandlot:session:" + id + ":instances" }
func keySetup(id string) string     { return "sandlot:setup:" + id }

// New returns a Store over rdb keeping ended sessions readable for retention.
func New(rdb redis.UniversalClient, retention time.Duration) *Store {
	return &Store{rdb: rdb, retention: retention}
}

// Owner returns this deployment's name for the objects it makes on the engine: made once, shared by every
// Sandlot process on this Redis, so that none of them ever collects another deployment's nodes.
func (s *Store) Owner(ctx context.Context) (string, error) {
	fresh := make([]byte, 8)
	if _, err := rand.Read(fresh); err != nil {
		return "", err
	}
	if err := s.rdb.SetNX(ctx, keyOwner, "d"+hex.EncodeToString(fresh), 0).Err(); err != nil {
		return "", fmt.Errorf("store deployment name: %w", err)
	}
	return s.rdb.Get(ctx, keyOwner).Result()
}

// SigningKey returns the key session tokens are signed with: made once, by whichever process asks first, and
// shared through Redis by every Sandlot process on it.
func (s *Store) SigningKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if err := s.rdb.SetNX(ctx, keyKey, fresh, 0).Err(); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	key, err := s.rdb.Get(ctx, keyKey).Bytes()
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	return key, nil
}

// Create stores a new session; a starting one gets a setup lease of ttl.
func (s *Store) Create(ctx context.Context, sess session.Session, setupLease time.Duration) error {
	sess.Instances = nil
	data, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, keyRecord(sess.ID), data, 0)
		p.SAdd(ctx, keyLive, sess.ID)
		p.ZAdd(ctx, keyDeadlines, redis.Z{Score: float64(sess.ExpiresAt.UnixMilli()), Member: sess.ID})
		if sess.State == session.StateStarting {
			p.SAdd(ctx, keyStarting, sess.ID)
			p.Set(ctx, keySetup(sess.ID), "1", setupLease)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store session %s: %w", sess.ID, err)
	}
	return nil
}

// Get reads a session and its nodes.
func (s *Store) Get(ctx context.Context, id string) (session.Session, error) {
	var sess session.Session
	pipe := s.rdb.Pipeline()
	rec := pipe.Get(ctx, keyRecord(id))
	inst := pipe.HGetAll(ctx, keyInstances(id))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return sess, fmt.Errorf("read session %s: %w", id, err)
	}
	data, err := rec.Bytes()
	if errors.Is(err, redis.Nil) {
		return sess, fmt.Errorf("%w: session %s", session.ErrNotFound, id)
	}
	if err := json.Unmarshal(data, &sess); err != nil {
		return sess, fmt.Errorf("decode session %s: %w", id, err)
	}
	sess.Instances = []session.Instance{}
	for _, v := range inst.Val() {
		var in session.Instance
		if json.Unmarshal([]byte(v), &in) == nil {
			sess.Instances = append(sess.Instances, in)
		}
	}
	session.SortInstances(sess.Instances)
	return sess, nil
}

// Live lists the sessions not ended.
func (s *Store) Live(ctx context.Context) ([]string, error) {
	return s.rdb.SMembers(ctx, keyLive).Result()
}

// IsLive reports whether a session exists and has not ended.
func (s *Store) IsLive(ctx context.Context, id string) (bool, error) {
	return s.rdb.SIsMember(ctx, keyLive, id).Result()
}

// setFields changes fields of a live session's record, and with the same call, when ARGV[2] is given, its entry
// in a sorted set or a set. KEYS record, then the set to update. ARGV want-state ("" for any live), set operation
// ("" none, "zadd" score member, "srem" member), its arguments (two: unused ones empty), then field/value pairs.
// Returns the new record, or an error reply "ended" / "missing" / "state".
var setFields = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return redis.error_reply('missing') end
local rec = cjson.decode(data)
if rec.state == 'ended' then return redis.error_reply('ended') end
if ARGV[1] ~= '' and rec.state ~= ARGV[1] then return redis.error_reply('state') end
for i = 5, #ARGV, 2 do rec[ARGV[i]] = ARGV[i+1] end
local out = cjson.encode(rec)
redis.call('SET', KEYS[1], out, 'KEEPTTL')
if ARGV[2] == 'zadd' then redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[4]) end
if ARGV[2] == 'srem' then redis.call('SREM', KEYS[2], ARGV[4]) end
return out
`)

// Activate marks a starting session active and takes it off the list of setups in progress (its setup lease then
// no longer matters and runs out).
func (s *Store) Activate(ctx context.Context, id string) error {
	return s.update(ctx, id, session.StateStarting, keyStarting, "srem", "", "state", string(session.StateActive))
}

// Extend moves a live session's deadline, in its record and in the reaper's list alike.
func (s *Store) Extend(ctx context.Context, id string, to time.Time) error {
	return s.update(ctx, id, "", keyDeadlines, "zadd", strconv.FormatInt(to.UnixMilli(), 10),
		"expires_at", to.UTC().Format(time.RFC3339Nano))
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

func (s *Store) update(ctx context.Context, id string, want session.State, set, op, score string, pairs ...string) error {
	args := append([]any{string(want), op, score, id}, toAny(pairs)...)
	err := setFields.Run(ctx, s.rdb, []string{keyRecord(id), set}, args...).Err()
	switch {
	case err == nil:
		return nil
	case reply(err) == "missing":
		return fmt.Errorf("%w: session %s", session.ErrNotFound, id)
	case reply(err) == "ended":
		return fmt.Errorf("%w: session %s", session.ErrEnded, id)
	case reply(err) == "state":
		return fmt.Errorf("%w: session %s is not %s", session.ErrConflict, id, want)
	}
	return fmt.Errorf("update session %s: %w", id, err)
}

// claimEnd ends a session once. KEYS record, live, deadlines, starting, setup lease, ending, instances.
// ARGV id, reason, message, ended_at, retention ms, lease-until ms. Returns the record if this call ended it, nil
// if it had ended already or does not exist.
var claimEnd = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return false end
local rec = cjson.decode(data)
if rec.state == 'ended' then return false end
rec.state = 'ended'
rec.end_reason = ARGV[2]
if ARGV[3] ~= '' then rec.end_message = ARGV[3] end
rec.ended_at = ARGV[4]
local out = cjson.encode(rec)
redis.call('SET', KEYS[1], out, 'PX', ARGV[5])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[5])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
redis.call('PEXPIRE', KEYS[7], ARGV[5])
return out
`)

// ClaimEnd ends a session if no one has: it records the reason and puts the session on the teardown list with a
// lease until leaseUntil. Only one caller ever gets ok; it must then tear the session down and call FinishEnd.
func (s *Store) ClaimEnd(ctx context.Context, id string, reason session.EndReason, message string, leaseUntil time.Time) (session.Session, bool, error) {
	var sess session.Session
	res, err := claimEnd.Run(ctx, s.rdb,
		[]string{keyRecord(id), keyLive, keyDeadlines, keyStarting, keySetup(id), keyEnding, keyInstances(id)},
		id, string(reason), message, time.Now().UTC().Format(time.RFC3339Nano), s.retention.Milliseconds(),
		leaseUntil.UnixMilli()).Text()
	if errors.Is(err, redis.Nil) {
		return sess, false, nil
	}
	if err != nil {
		return sess, false, fmt.Errorf("end session %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(res), &sess); err != nil {
		return sess, false, fmt.Errorf("decode session %s: %w", id, err)
	}
	return sess, true, nil
}

// renewEnding takes over a teardown whose lease ran out. KEYS ending. ARGV id, now ms, lease-until ms.
var renewEnding = redis.NewScript(`
local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not lease or tonumber(lease) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`)

// TakeOverEnding claims a teardown whose process died (its lease ran out). Only one caller gets true.
func (s *Store) TakeOverEnding(ctx context.Context, id string, leaseUntil time.Time) (bool, error) {
	n, err := renewEnding.Run(ctx, s.rdb, []string{keyEnding}, id, time.Now().UnixMilli(), leaseUntil.UnixMilli()).Int()
	return n == 1, err
}

// FinishEnd records that a session's teardown is complete.
func (s *Store) FinishEnd(ctx context.Context, id string) error {
	return s.rdb.ZRem(ctx, keyEnding, id).Err()
}

// Due lists sessions whose deadline has passed (at most limit).
func (s *Store) Due(ctx context.Context, now time.Time, limit int64) ([]string, error) {
	return s.rdb.ZRangeByScore(ctx, keyDeadlines, &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(now.UnixMilli(), 10), Count: limit}).Result()
}

// StaleEndings lists teardowns whose lease has run out.
func (s *Store) StaleEndings(ctx context.Context, now time.Time) ([]string, error) {
	return s.rdb.ZRangeByScore(ctx, keyEnding, &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 20}).Result()
}

// AbandonedSetups lists starting sessions whose setup lease expired: the process setting them up died.
func (s *Store) AbandonedSetups(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, keyStarting).Result()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		n, err := s.rdb.Exists(ctx, keySetup(id)).Result()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			out = append(out, id)
		}
	}
	return out, nil
}

// RenewSetup extends the lease of a session being set up.
func (s *Store) RenewSetup(ctx context.Context, id string, ttl time.Duration) error {
	return s.rdb.Set(ctx, keySetup(id), "1", ttl).Err()
}

// maxNodeNames is how many node names (node1...) a session's nodes are named from.
const maxNodeNames = 50

// allocateName takes the preferred name if it is free, else the lowest free nodeN of a live session. KEYS record,
// instances. ARGV placeholder, most, preferred ("" for none).

var allocateName = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return redis.error_reply('missing') end
if cjson.decode(data).state == 'ended' then return redis.error_reply('ended') end
if ARGV[3] ~= '' and redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[1]) == 1 then return ARGV[3] end
for n = 1, tonumber(ARGV[2]) do
  local name = 'node' .. n
  if redis.call('HSETNX', KEYS[2], name, ARGV[1]) == 1 then return name end
end
return redis.error_reply('full')
`)

// AllocateName reserves the lowest free node name of a live session and records the node as being created. A
// hostname that is itself a free node name (node3) is the node's name too: two nodes made at once, asked to be
// node1 and node2 (as PWD's SDK asks), are not named the other way round whichever is made first.
func (s *Store) AllocateName(ctx context.Context, id string, hostname string) (string, error) {
	placeholder, _ := json.Marshal(session.Instance{Hostname: hostname, Status: session.NodeCreating, Ports: []int{},
		CreatedAt: time.Now().UTC()})
	preferred := ""
	if n, err := strconv.Atoi(strings.TrimPrefix(hostname, "node")); err == nil && n >= 1 && n <= maxNodeNames &&
		hostname == "node"+strconv.Itoa(n) {
		preferred = hostname
	}
	name, err := allocateName.Run(ctx, s.rdb, []string{keyRecord(id), keyInstances(id)}, placeholder, maxNodeNames, preferred).Text()
	switch {
	case err == nil:
		return name, nil
	case reply(err) == "missing":
		return "", fmt.Errorf("%w: session %s", session.ErrNotFound, id)
	case reply(err) == "ended":
		return "", fmt.Errorf("%w: session %s", session.ErrEnded, id)
	}
	return "", fmt.Errorf("name a node of session %s: %w", id, err)
}

// PutInstance records a node of a session.
func (s *Store) PutInstance(ctx context.Context, id string, in session.Instance) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, keyInstances(id), in.Name, data).Err()
}

// DeleteInstance forgets a node of a session.
func (s *Store) DeleteInstance(ctx context.Context, id, name string) error {
	return s.rdb.HDel(ctx, keyInstances(id), name).Err()
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// reply is the message of an error reply a script gave with redis.error_reply (Redis 7 prefixes it with "ERR ").
func reply(err error) string { return strings.TrimPrefix(err.Error(), "ERR ") }
