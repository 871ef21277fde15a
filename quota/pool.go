package quota

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// reservePooledScript: KEYS session nodes counter, global running counter. ARGV nodes, max nodes a session,
// capacity. Returns {code, retry-after ms}; code "" is reserved.
var reservePooledScript = redis.NewScript(`
local nodes = tonumber(ARGV[1])
if nodes > tonumber(ARGV[2]) then return {'instance_quota', 0} end
local running = tonumber(redis.call('GET', KEYS[2]) or '0')
if running + nodes > tonumber(ARGV[3]) then return {'out_of_capacity', 0} end
redis.call('INCRBY', KEYS[1], nodes)
redis.call('INCRBY', KEYS[2], nodes)
return {'', 0}
`)

// ReservePooled reserves the nodes of a session made ahead for the warm pool: they count against the host's
// capacity like any others, but the session belongs to no client yet, so no client limit applies (AdmitSession
// with no nodes gives it one when it is claimed). EndSession gives them back. A refusal is a *Rejection.
func (q *Quota) ReservePooled(ctx context.Context, session string, nodes int) error {
	res, err := reservePooledScript.Run(ctx, q.rdb, []string{sessionNodesKey(session), runningKey},
		nodes, q.limits.InstancesPerSession, q.limits.Capacity).Slice()
	if err != nil {
		return fmt.Errorf("quota: reserve pooled session: %w", err)
	}
	return q.rejection(res)
}
