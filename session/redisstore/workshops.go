package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandlot/sandlot/session"
	"github.com/sandlot/sandlot/session/workshop"
)

// Workshops keeps workshops in Redis (workshop.Store). Keys:
//
//	sandlot:workshop:ID            the workshop record (JSON)
//	sandlot:workshop:ID:attendees  hash: attendee -> workshop.Attendee (JSON, without what is shown only)
//	sandlot:workshop:ID:order      list of attendees in the order they joined
//	sandlot:workshop:ID:seated     set of attendees holding a seat (waiting or active)
//	sandlot:workshop:ID:pending    set of seated attendees without a session yet
//	sandlot:workshop:ID:queue      list of queued attendees, first first
//	sandlot:workshop:ID:claims     hash: attendee -> lease (unix ms) of the process making their session
//	sandlot:workshop:ID:sessions   hash: session -> attendee
//	sandlot:workshop:ID:messages   list of broadcasts (JSON), oldest first, the last 200
//	sandlot:workshop-code:CODE     the workshop with that access code
//	sandlot:workshops              sorted set: workshop -> created (unix ms)
//	sandlot:workshops:live         set of workshops not ended, or ended with attendees still to end
//	sandlot:workshop-events        the Pub/Sub channel of workshop.Event (JSON)
//
// Seats, the queue and each attendee's state change only in Lua scripts, so that two processes never give one
// seat twice nor lose a place in the queue.
type Workshops struct {
	rdb redis.UniversalClient
}

// NewWorkshops returns the workshops kept in rdb.
func NewWorkshops(rdb redis.UniversalClient) *Workshops { return &Workshops{rdb: rdb} }

const (
	keyWorkshops     = "sandlot:workshops"
	keyLiveWorkshops = "sandlot:workshops:live"
	channelWorkshops = "sandlot:workshop-events"
	maxMessages      = 200
)

func keyWorkshop(id string) string { return "sandlot:workshop:" + id }
func keyCode(code string) string   { return "sandlot:workshop-code:" + code }
func keyW(id, part string) string  { return "sandlot:workshop:" + id + ":" + part }
func workshopKeys(id string) []string {
	// The KEYS of every attendee script, in this order.
	return []string{keyWorkshop(id), keyW(id, "attendees"), keyW(id, "seated"), keyW(id, "pending"),
		keyW(id, "queue"), keyW(id, "claims"), keyW(id, "sessions"), keyW(id, "order")}
}

// CreateWorkshop stores a new workshop under its code.
func (s *Workshops) CreateWorkshop(ctx context.Context, w workshop.Workshop) error {
	data, err := json.Marshal(w)
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetNX(ctx, keyCode(w.Code), w.ID, 0).Result()
	if err != nil {
		return fmt.Errorf("store workshop code: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: code %s is taken", session.ErrConflict, w.Code)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keyWorkshop(w.ID), data, 0)
		p.ZAdd(ctx, keyWorkshops, redis.Z{Score: float64(w.CreatedAt.UnixMilli()), Member: w.ID})
		p.SAdd(ctx, keyLiveWorkshops, w.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store workshop %s: %w", w.ID, err)
	}
	return nil
}

// Workshop reads a workshop.
func (s *Workshops) Workshop(ctx context.Context, id string) (workshop.Workshop, error) {
	var w workshop.Workshop
	data, err := s.rdb.Get(ctx, keyWorkshop(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return w, fmt.Errorf("%w: workshop %s", session.ErrNotFound, id)
	}
	if err != nil {
		return w, fmt.Errorf("read workshop %s: %w", id, err)
	}
	return w, json.Unmarshal(data, &w)
}

// WorkshopByCode reads the workshop with an access code.
func (s *Workshops) WorkshopByCode(ctx context.Context, code string) (workshop.Workshop, error) {
	id, err := s.rdb.Get(ctx, keyCode(code)).Result()
	if errors.Is(err, redis.Nil) {
		return workshop.Workshop{}, fmt.Errorf("%w: no workshop has this code", session.ErrNotFound)
	}
	if err != nil {
		return workshop.Workshop{}, fmt.Errorf("read workshop code: %w", err)
	}
	return s.Workshop(ctx, id)
}

// Workshops lists every workshop, newest first.
func (s *Workshops) Workshops(ctx context.Context) ([]workshop.Workshop, error) {
	ids, err := s.rdb.ZRevRange(ctx, keyWorkshops, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := []workshop.Workshop{}
	for _, id := range ids {
		if w, err := s.Workshop(ctx, id); err == nil {
			out = append(out, w)
		}
	}
	return out, nil
}

// Live lists the workshops not ended, and ended ones not retired.
func (s *Workshops) Live(ctx context.Context) ([]string, error) {
	return s.rdb.SMembers(ctx, keyLiveWorkshops).Result()
}

// updateWorkshop changes fields of an open workshop. KEYS record. ARGV field/JSON value pairs. Returns the record
// or an error reply "missing" / "ended".
var updateWorkshop = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return redis.error_reply('missing') end
local rec = cjson.decode(data)
if rec.state == 'ended' then return redis.error_reply('ended') end
for i = 1, #ARGV, 2 do rec[ARGV[i]] = cjson.decode(ARGV[i+1]) end
local out = cjson.encode(rec)
redis.call('SET', KEYS[1], out)
return out
`)

// Update changes an open workshop.
func (s *Workshops) Update(ctx context.Context, id string, c workshop.Change) (workshop.Workshop, error) {
	var args []any
	add := func(field string, v any) {
		b, _ := json.Marshal(v)
		args = append(args, field, string(b))
	}
	if c.Locked != nil {
		add("locked", *c.Locked)
	}
	if c.Seats != nil {
		add("seats", *c.Seats)
	}
	if c.EndsAt != nil {
		add("ends_at", c.EndsAt.UTC())
	}
	var w workshop.Workshop
	res, err := updateWorkshop.Run(ctx, s.rdb, []string{keyWorkshop(id)}, args...).Text()
	switch {
	case err == nil:
		return w, json.Unmarshal([]byte(res), &w)
	case reply(err) == "missing":
		return w, fmt.Errorf("%w: workshop %s", session.ErrNotFound, id)
	case reply(err) == "ended":
		return w, fmt.Errorf("%w: workshop %s", workshop.ErrOver, id)
	}
	return w, fmt.Errorf("update workshop %s: %w", id, err)
}

// setDemo sets an open workshop's demo session if it is still the one the caller saw. KEYS record. ARGV old
// ("" for none), new. Returns 1 if it did.
var setDemo = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return redis.error_reply('missing') end
local rec = cjson.decode(data)
if rec.state == 'ended' then return redis.error_reply('ended') end
if (rec.demo_session_id or '') ~= ARGV[1] then return 0 end
rec.demo_session_id = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(rec))
return 1
`)

// SetDemo makes session the demo of an open workshop whose demo is still old.
func (s *Workshops) SetDemo(ctx context.Context, id, old, demo string) (bool, error) {
	n, err := setDemo.Run(ctx, s.rdb, []string{keyWorkshop(id)}, old, demo).Int()
	switch {
	case err == nil:
		return n == 1, nil
	case reply(err) == "missing":
		return false, fmt.Errorf("%w: workshop %s", session.ErrNotFound, id)
	case reply(err) == "ended":
		return false, fmt.Errorf("%w: workshop %s", workshop.ErrOver, id)
	}
	return false, fmt.Errorf("set the demo of workshop %s: %w", id, err)
}

// markEnded ends a workshop once. KEYS record. ARGV ended_at. Returns 1 if this call ended it.
var markEnded = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return 0 end
local rec = cjson.decode(data)
if rec.state == 'ended' then return 0 end
rec.state = 'ended'
rec.ended_at = ARGV[1]
redis.call('SET', KEYS[1], cjson.encode(rec))
return 1
`)

// MarkEnded ends a workshop; only one caller gets true.
func (s *Workshops) MarkEnded(ctx context.Context, id string, at time.Time) (bool, error) {
	n, err := markEnded.Run(ctx, s.rdb, []string{keyWorkshop(id)}, at.UTC().Format(time.RFC3339Nano)).Int()
	return n == 1, err
}

// Retire takes an ended workshop off the live list.
func (s *Workshops) Retire(ctx context.Context, id string) error {
	return s.rdb.SRem(ctx, keyLiveWorkshops, id).Err()
}

// join seats or queues an attendee. KEYS: see workshopKeys. ARGV attendee id, attendee JSON, claim lease ms (0:
// none). Returns {state, position} or an error reply "missing" / "ended" / "locked".
var join = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return redis.error_reply('missing') end
local rec = cjson.decode(data)
if rec.state == 'ended' then return redis.error_reply('ended') end
if rec.locked then return redis.error_reply('locked') end
local a = cjson.decode(ARGV[2])
local position = 0
if redis.call('SCARD', KEYS[3]) < tonumber(rec.seats) then
  a.state = 'waiting'
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[1])
  if tonumber(ARGV[3]) > 0 then redis.call('HSET', KEYS[6], ARGV[1], ARGV[3]) end
else
  a.state = 'queued'
  position = redis.call('RPUSH', KEYS[5], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(a))
redis.call('RPUSH', KEYS[8], ARGV[1])
return {a.state, position}
`)

// Join seats an attendee, or queues them when the seats are taken; a seated one's session is claimed for the
// caller until claim, unless it is zero.
func (s *Workshops) Join(ctx context.Context, id string, a workshop.Attendee, claim time.Time) (workshop.Attendee, error) {
	data, err := json.Marshal(a)
	if err != nil {
		return a, err
	}
	lease := int64(0)
	if !claim.IsZero() {
		lease = claim.UnixMilli()
	}
	res, err := join.Run(ctx, s.rdb, workshopKeys(id), a.ID, data, lease).Slice()
	if err != nil {
		return a, s.scriptErr(id, err)
	}
	state, _ := res[0].(string)
	pos, _ := res[1].(int64)
	a.State, a.Position = workshop.AttendeeState(state), int(pos)
	return a, nil
}

func (s *Workshops) scriptErr(id string, err error) error {
	switch reply(err) {
	case "missing":
		return fmt.Errorf("%w: workshop %s", session.ErrNotFound, id)
	case "ended":
		return workshop.ErrOver
	case "locked":
		return workshop.ErrLocked
	case "gone":
		return fmt.Errorf("%w: the attendee has ended", session.ErrEnded)
	}
	return fmt.Errorf("workshop %s: %w", id, err)
}

// Attendee reads one attendee, with their place in the queue.
func (s *Workshops) Attendee(ctx context.Context, id, attendee string) (workshop.Attendee, error) {
	var a workshop.Attendee
	data, err := s.rdb.HGet(ctx, keyW(id, "attendees"), attendee).Bytes()
	if errors.Is(err, redis.Nil) {
		return a, fmt.Errorf("%w: attendee %s", session.ErrNotFound, attendee)
	}
	if err != nil {
		return a, fmt.Errorf("read attendee %s: %w", attendee, err)
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, err
	}
	if a.State == workshop.Queued {
		pos, err := s.rdb.LPos(ctx, keyW(id, "queue"), attendee, redis.LPosArgs{}).Result()
		if err == nil {
			a.Position = int(pos) + 1
		}
	}
	return a, nil
}

// Attendees lists a workshop's attendees in the order they joined.
func (s *Workshops) Attendees(ctx context.Context, id string) ([]workshop.Attendee, error) {
	pipe := s.rdb.Pipeline()
	order := pipe.LRange(ctx, keyW(id, "order"), 0, -1)
	all := pipe.HGetAll(ctx, keyW(id, "attendees"))
	queue := pipe.LRange(ctx, keyW(id, "queue"), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read attendees of %s: %w", id, err)
	}
	position := map[string]int{}
	for i, aid := range queue.Val() {
		position[aid] = i + 1
	}
	out := []workshop.Attendee{}
	for _, aid := range order.Val() {
		var a workshop.Attendee
		if json.Unmarshal([]byte(all.Val()[aid]), &a) != nil {
			continue
		}
		if a.State == workshop.Queued {
			a.Position = position[aid]
		}
		out = append(out, a)
	}
	return out, nil
}

// SeatsTaken counts the seats held.
func (s *Workshops) SeatsTaken(ctx context.Context, id string) (int, error) {
	n, err := s.rdb.SCard(ctx, keyW(id, "seated")).Result()
	return int(n), err
}

// Pending lists seated attendees without a session.
func (s *Workshops) Pending(ctx context.Context, id string) ([]string, error) {
	return s.rdb.SMembers(ctx, keyW(id, "pending")).Result()
}

// promote seats queued attendees while seats are free. KEYS: see workshopKeys. Returns those seated.
var promote = redis.NewScript(`
local data = redis.call('GET', KEYS[1])
if not data then return {} end
local rec = cjson.decode(data)
if rec.state == 'ended' then return {} end
local seated = {}
while redis.call('SCARD', KEYS[3]) < tonumber(rec.seats) do
  local aid = redis.call('LPOP', KEYS[5])
  if not aid then break end
  local raw = redis.call('HGET', KEYS[2], aid)
  if raw then
    local a = cjson.decode(raw)
    if a.state == 'queued' then
      a.state = 'waiting'
      redis.call('HSET', KEYS[2], aid, cjson.encode(a))
      redis.call('SADD', KEYS[3], aid)
      redis.call('SADD', KEYS[4], aid)
      table.insert(seated, aid)
    end
  end
end
return seated
`)

// Promote seats queued attendees, in order, while seats are free.
func (s *Workshops) Promote(ctx context.Context, id string) ([]string, error) {
	return promote.Run(ctx, s.rdb, workshopKeys(id)).StringSlice()
}

// claimStart: KEYS see workshopKeys. ARGV attendee, now ms, lease ms. Returns 1 if this call has the claim.
var claimStart = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then return 0 end
local lease = redis.call('HGET', KEYS[6], ARGV[1])
if lease and tonumber(lease) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[3])
return 1
`)

// ClaimStart gives one caller the making of a pending attendee's session.
func (s *Workshops) ClaimStart(ctx context.Context, id, attendee string, lease time.Time) (bool, error) {
	n, err := claimStart.Run(ctx, s.rdb, workshopKeys(id), attendee, time.Now().UnixMilli(), lease.UnixMilli()).Int()
	return n == 1, err
}

// move changes a seated attendee. KEYS see workshopKeys. ARGV attendee, what ("activate", "requeue", "finish"),
// session, reason, at. activate: a pending attendee of an open workshop gets session; requeue: a pending one
// goes back to the head of the queue; finish: anyone not ended ends (when session is given, only if it is
// theirs). Returns 1 if it changed them, 0 if not; error replies "missing", "ended" (the workshop), "gone" (the
// attendee).
var move = redis.NewScript(`
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return redis.error_reply('missing') end
local a = cjson.decode(raw)
local rec = cjson.decode(redis.call('GET', KEYS[1]))
local what = ARGV[2]
if what == 'finish' then
  if a.state == 'ended' then return 0 end
  if ARGV[3] ~= '' and a.session_id ~= ARGV[3] then return 0 end
  a.state = 'ended'
  a.end_reason = ARGV[4]
  a.ended_at = ARGV[5]
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('LREM', KEYS[5], 0, ARGV[1])
  redis.call('HDEL', KEYS[6], ARGV[1])
elseif a.state ~= 'waiting' or redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then
  return redis.error_reply('gone')
elseif what == 'activate' then
  if rec.state == 'ended' then return redis.error_reply('ended') end
  a.state = 'active'
  a.session_id = ARGV[3]
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[6], ARGV[1])
  redis.call('HSET', KEYS[7], ARGV[3], ARGV[1])
elseif what == 'requeue' then
  a.state = 'queued'
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[6], ARGV[1])
  redis.call('LPUSH', KEYS[5], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(a))
return 1
`)

func (s *Workshops) move(ctx context.Context, id, attendee, what, sessionID, reason string, at time.Time) (bool, error) {
	n, err := move.Run(ctx, s.rdb, workshopKeys(id), attendee, what, sessionID, reason,
		at.UTC().Format(time.RFC3339Nano)).Int()
	if err != nil {
		return false, s.scriptErr(id, err)
	}
	return n == 1, nil
}

// Activate records a claimed attendee's session.
func (s *Workshops) Activate(ctx context.Context, id, attendee, sessionID string) error {
	_, err := s.move(ctx, id, attendee, "activate", sessionID, "", time.Now())
	return err
}

// Requeue puts a claimed attendee first in the queue, their seat freed.
func (s *Workshops) Requeue(ctx context.Context, id, attendee string) error {
	_, err := s.move(ctx, id, attendee, "requeue", "", "", time.Now())
	return err
}

// Finish ends an attendee for reason, freeing their seat.
func (s *Workshops) Finish(ctx context.Context, id, attendee, sessionID, reason string, at time.Time) (bool, error) {
	return s.move(ctx, id, attendee, "finish", sessionID, reason, at)
}

// AttendeeOf names the attendee whose session sessionID is.
func (s *Workshops) AttendeeOf(ctx context.Context, id, sessionID string) (string, error) {
	aid, err := s.rdb.HGet(ctx, keyW(id, "sessions"), sessionID).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("%w: no attendee of %s has session %s", session.ErrNotFound, id, sessionID)
	}
	return aid, err
}

// stampAttendee sets a time field of an attendee. KEYS attendees. ARGV attendee, field, at.
var stampAttendee = redis.NewScript(`
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local a = cjson.decode(raw)
a[ARGV[2]] = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(a))
return 1
`)

func (s *Workshops) stamp(ctx context.Context, id, attendee, field string, at time.Time) error {
	return stampAttendee.Run(ctx, s.rdb, []string{keyW(id, "attendees")}, attendee, field, at.UTC().Format(time.RFC3339Nano)).Err()
}

// Touch records that an attendee's page asked for its state at (last_seen).
func (s *Workshops) Touch(ctx context.Context, id, attendee string, at time.Time) error {
	return s.stamp(ctx, id, attendee, "last_seen", at)
}

// Typed records that an attendee typed at (last_activity).
func (s *Workshops) Typed(ctx context.Context, id, attendee string, at time.Time) error {
	return s.stamp(ctx, id, attendee, "last_activity", at)
}

// AddMessage keeps a broadcast (the last maxMessages).
func (s *Workshops) AddMessage(ctx context.Context, id string, m workshop.Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, keyW(id, "messages"), data)
		p.LTrim(ctx, keyW(id, "messages"), -maxMessages, -1)
		return nil
	})
	return err
}

// Messages are a workshop's broadcasts, oldest first.
func (s *Workshops) Messages(ctx context.Context, id string) ([]workshop.Message, error) {
	raw, err := s.rdb.LRange(ctx, keyW(id, "messages"), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := []workshop.Message{}
	for _, r := range raw {
		var m workshop.Message
		if json.Unmarshal([]byte(r), &m) == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// Publish sends an event to every process's subscription.
func (s *Workshops) Publish(ctx context.Context, e workshop.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.rdb.Publish(ctx, channelWorkshops, data).Err()
}

// Subscribe delivers the events every process publishes, from the moment it returns until ctx is done (then the
// channel closes).
func (s *Workshops) Subscribe(ctx context.Context) (<-chan workshop.Event, error) {
	ps := s.rdb.Subscribe(ctx, channelWorkshops)
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation: listening from now on
		_ = ps.Close()
		return nil, fmt.Errorf("subscribe to workshop events: %w", err)
	}
	out := make(chan workshop.Event, 256)
	go func() {
		defer close(out)
		defer ps.Close()
		in := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				var e workshop.Event
				if json.Unmarshal([]byte(m.Payload), &e) == nil {
					select {
					case out <- e:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out, nil
}
