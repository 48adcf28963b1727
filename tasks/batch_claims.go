package tasks

// Claims make sure one import item is sent by one batch at a time.
//
// Outside batch mode, asynq's deterministic task IDs are what keep an item
// from being queued twice. In batch mode they are not enough: asynq deletes
// a group member's task as soon as it is aggregated, so while the item
// waits inside a batch:create task its ID is free, and a resumed Submit (the
// same file imported again) can enqueue a second copy, which lands in
// another batch. Both would create the object, each believing it is the
// first attempt. So before a batch sends (or looks up) an item it claims the
// item in Redis; a batch that finds the item claimed by another skips it.
//
// A claim holds the batch task's ID. An item put back on the queue is
// handed on: its claim becomes "q:" + the batch's ID, which any batch but
// that one may take, so that a rerun of the batch that put it back does not
// send it next to its own requeued copy. Claims are removed when the item's
// outcome is recorded, and expire after claimTTL (refreshed by every run of
// the owner): an expired claim can only let two batches race if one run
// lasts longer than claimTTL, which DefaultTimeout prevents.

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimTTL bounds how long a claim outlives its owner's last run.
const claimTTL = 15 * time.Minute

// Answers of claimScript, one per key. The script's Lua names them too
// (CLAIMED, TAKEN: see claimCodes), from these constants, so that the two
// cannot drift.
const (
	claimTaken   = 0 // another batch holds the item
	claimClaimed = 1 // the item is this batch's now
)

// claimCodes defines claimScript's answers as Lua locals.
var claimCodes = "local CLAIMED = " + strconv.Itoa(claimClaimed) + "\n" +
	"local TAKEN = " + strconv.Itoa(claimTaken) + "\n"

// claimScript claims, for a batch task, every item no other batch holds:
// free, already its own, or handed on ("q:" + another batch's ID).
//
// Input:
// KEYS[1..n] -> PREFIX:{PORTAL}:claim:ITEM_TASK_ID (keys.Claim), one per item
// --
// ARGV[1] -> owner: the batch task's ID
// ARGV[2] -> claim TTL, ms
//
// Output: a list with, per key in KEYS order, CLAIMED if the item is the
// owner's now (its claim set, with the TTL) or TAKEN if another batch holds
// it.
var claimScript = redis.NewScript(claimLua)

// claimLua is claimScript's source.
var claimLua = claimCodes + `
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if (not v) or v == ARGV[1] or (string.sub(v, 1, 2) == 'q:' and v ~= 'q:' .. ARGV[1]) then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    out[i] = CLAIMED
  else
    out[i] = TAKEN
  end
end
return out
`

// releaseScript deletes the claims the owner still holds, or hands them on
// (sets them to a new value). Claims held by anyone else are left alone.
//
// Input:
// KEYS[1..n] -> PREFIX:{PORTAL}:claim:ITEM_TASK_ID (keys.Claim), one per item
// --
// ARGV[1] -> owner: the batch task's ID
// ARGV[2] -> new value ("q:" + owner: handed on), or "": delete
// ARGV[3] -> claim TTL, ms (with a new value only)
//
// Output: 0.
var releaseScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    if ARGV[2] == '' then redis.call('DEL', k) else redis.call('SET', k, ARGV[2], 'PX', ARGV[3]) end
  end
end
return 0
`)

func (h *Handler) claimKey(portal, itemTaskID string) string {
	return h.claims.keys.Claim(portal, itemTaskID)
}

// retake sets owner's claim on an item again, after handing it on failed
// (the item could not be put back: this batch still has it). Best effort:
// a claim left handed on only lets another batch take the item.
func (h *Handler) retake(ctx context.Context, portal, owner, itemTaskID string) {
	if owner == "" || itemTaskID == "" {
		return
	}
	key := h.claimKey(portal, itemTaskID)
	if err := h.claims.rdb.Set(context.WithoutCancel(ctx), key, owner, claimTTL).Err(); err != nil {
		h.logger.WarnContext(ctx, "take a batch item claim back", "task_id", itemTaskID, "err", err)
	}
}

// claim keeps the items this batch may send and counts the others as
// skipped. Items without a task ID (outside imports) are always kept.
// Without a batch task ID (run outside an asynq server) nothing is claimed.
func (r *batchRun) claim(ctx context.Context, owner string, todo []*batchItem) ([]*batchItem, error) {
	if owner == "" {
		return todo, nil
	}
	var keys []string
	for _, it := range todo {
		if it.TaskID != "" {
			keys = append(keys, r.h.claimKey(r.portal.Name, it.TaskID))
		}
	}
	if len(keys) == 0 {
		return todo, nil
	}
	got, err := claimScript.Run(ctx, r.h.claims.rdb, keys, owner, claimTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("claim batch items: %w", err)
	}
	out := todo[:0:0]
	i := 0
	for _, it := range todo {
		if it.TaskID != "" {
			ok := got[i] == claimClaimed
			i++
			if !ok {
				r.res.Skipped++
				r.h.logger.InfoContext(ctx, "batch item skipped: another batch has it", "portal", r.portal.Name, "task_id", it.TaskID)
				continue
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// release deletes the claims owner still holds on items, or hands them on
// to whoever takes the item next (handOn).
func (h *Handler) release(ctx context.Context, portal, owner string, handOn bool, taskIDs ...string) error {
	if owner == "" {
		return nil
	}
	var keys []string
	for _, id := range taskIDs {
		if id != "" {
			keys = append(keys, h.claimKey(portal, id))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	next := ""
	if handOn {
		next = "q:" + owner
	}
	if err := releaseScript.Run(ctx, h.claims.rdb, keys, owner, next, claimTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("release batch item claims: %w", err)
	}
	return nil
}
