// Package b24test is an in-process simulated Bitrix24 cloud portal: the
// project's model of reality, never kinder than a real portal. It has the
// real limits (query leaky bucket, per-method operating time), the two
// methods b24queue creates objects with, their lookups, batch, webhook and
// OAuth authentication, portal-level conditions and injectable faults. It
// is an ordinary HTTP server: it does not import the b24 client, so it
// checks the client from outside.
//
// Served paths:
//
//	POST /rest/USER/SECRET/METHOD[.json]  webhook call (JSON or PHP-style form body)
//	POST /rest/METHOD[.json]              OAuth call, access token in body field "auth"
//	GET|POST /oauth/token/?grant_type=refresh_token&...  rotates both tokens
//	GET  /_sim/stats, /_sim/departments, /_sim/workplaces, /_sim/faults,
//	     /_sim/conditions                 JSON snapshots
//	POST /_sim/faults (JSON Faults), /_sim/conditions (JSON Conditions),
//	     /_sim/block?method=M&seconds=N, /_sim/move?to=HOST (empty: back),
//	     /_sim/NAME?on=1 (on=0 lifts) for NAME in deleted, overload,
//	     payment-required, webhook-revoked, access-denied,
//	     insufficient-scope, user-access-error, refresh-revoked,
//	     client-revoked
//
// Methods: department.add, department.get, department.update,
// crm.automatedsolution.add, crm.automatedsolution.list,
// crm.automatedsolution.update and batch; anything else is 404
// ERROR_METHOD_NOT_FOUND.
//
// What the portal does by default, as the real one does:
//
//   - Every portal has its root department, ID 1 "Company": department.add
//     without PARENT (or PARENT 0 or empty) fails with ERROR_CORE
//     DescTwoRoots. Other validation failures: DescNoName, DescNoParent.
//   - department.add saves the department, then sets UF_HEAD (a second step
//     that the HeadErrorRate fault fails: ERROR_CORE DescHeadFailed, the
//     department exists).
//   - department.get filters NAME with SQL LIKE on the whole value (no
//     implied %, % and _ are wildcards, case-insensitive), ID, PARENT and
//     UF_HEAD exactly; answers ID, NAME, PARENT (not for the root) and
//     UF_HEAD (only with a head) as strings and SORT as a number; in tree
//     order (pre-order, siblings by SORT then ID) unless sort/order say
//     otherwise.
//   - List methods answer 50 per page from the offset in lowercase "start"
//     only ("START" is ignored); an offset past the end answers page 1
//     again; "total" always, "next" only when there is a next page. The
//     same inside a batch (result_total, result_next).
//   - batch runs its first 50 commands; every command past the 50th gets
//     ERROR_BATCH_LENGTH_EXCEEDED in result_error. A $result[...]
//     reference is substituted when it resolves and stays literal text when
//     it does not.
//   - A body that cannot be decoded (invalid JSON with a JSON content type)
//     runs the method without the body's parameters.
//   - The operating limit counts executions in buckets of a tenth of the
//     window that open at their first call and leave a whole window later;
//     a method is refused while its total exceeds the limit, the call that
//     crosses it completes. operating_reset_at is when the oldest counted
//     bucket leaves.
//
// Order of checks for a REST request: a GET is counted (RedirectedGETs);
// the query bucket (503, whatever else is wrong); a moved portal (302); the
// portal's state (PORTAL_DELETED, OVERLOAD_LIMIT, PAYMENT_REQUIRED);
// authentication (NO_AUTH_FOUND, INVALID_CREDENTIALS for a revoked webhook,
// invalid_token, expired_token); access (ACCESS_DENIED, insufficient_scope,
// user_access_error); the per-request faults before the work (500, 502);
// a hold (HoldRate); Latency; then per call (the request or each batch
// command): the operating limit or BlockMethod (429), the per-call faults
// before the work (AbsurdResetRate, EchoURLRate, DBErrorRate, and
// CommandErrorRate per command), the method, the faults that change its
// answer (HeadErrorRate inside department.add, NullResultRate,
// MissingResultRate, FloatIDRate, DuplicateIDRate per batch); finally the
// per-request faults after the work (lost response, slow, malformed).
// Each fault's field in Faults says what it does and where it is rolled.
//
// Everything is safe for concurrent use. Time is read from Config.Clock so
// tests can drive the limits without sleeping; only Latency, SlowDelay and
// HoldDelay ever sleep.
package b24test
