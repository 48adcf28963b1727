// Package tasks turns queued work into Bitrix24 objects, exactly once.
//
// It owns the asynq task types (department:create, workplace:create), their
// payloads and constructors, the handlers that call the portal through the
// shared limiter, and the one place (errors.go) that decides what an error
// means for the queue: park until a block ends, back off, or fail for good.
//
// # Exactly once on an at-least-once queue
//
// asynq may run a task twice (a worker killed mid-call, a lease that expired)
// and a create call may succeed after its response was lost. Bitrix24 has no
// idempotency key, so before a create that follows an attempt whose outcome
// is unknown, the handler looks the object up (department.get by NAME and
// PARENT, crm.automatedsolution.list by title) and adopts an existing match.
// "Unknown" is decided by an attempt marker written to Redis just before the
// portal is called and removed once the outcome is known (see attempts.go),
// and, as a second line of defence, by asynq's retry count. A first attempt
// does not pay for a lookup.
package tasks
