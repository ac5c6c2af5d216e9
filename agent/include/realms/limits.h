/*
 * Named limits of the agent and realmsctl, in one place (definitions only).
 * Each says what a peer gets when it crosses it. Protocol constants live
 * with their protocol (spop-t.h, mframe-t.h).
 */
#ifndef REALMS_LIMITS_H
#define REALMS_LIMITS_H

#include <stdint.h>

/* A limit as a string literal, for the Redis scripts written as C strings
 * (the limit must then be a bare literal). */
#define LIMIT_STR_(x)              #x
#define LIMIT_STR(x)               LIMIT_STR_(x)

/* SPOP: smallest max-frame-size the protocol allows. A HELLO announcing less
 * gets AGENT-DISCONNECT status 9 (bad frame size). */
#define SPOP_MIN_FRAME_SIZE        256u

/* SPOP: the largest frame the agent accepts (and so announces). HAProxy's own
 * value is tune.bufsize - 4; the AGENT-HELLO answers min(ours, HAProxy's).
 * A frame whose length prefix exceeds the negotiated value gets
 * AGENT-DISCONNECT status 3 (frame too big) and the connection is closed. */
#define SPOP_MAX_FRAME_SIZE        (1024u * 1024u)

/* SPOP: arguments of one message kept for its handler; further arguments are
 * still validated but not passed on (nb-args is one byte, so at most 255). */
#define SPOP_MSG_MAX_ARGS          32

/* Agent: bytes queued for writing on one connection before the agent stops
 * reading from it (back-pressure, not an error). */
#define SPOA_WBUF_HIGH             (256u * 1024u)

/* Agent: NOTIFY frames in flight (received, not yet acknowledged) on one
 * connection before the agent stops reading from it. */
#define SPOA_MAX_INFLIGHT          1024

/* Agent: a connection that has not completed its HELLO within this many
 * seconds is closed (a peer sending one byte per second cannot hold a slot). */
#define SPOA_HELLO_TIMEOUT_S       5.0

/* Agent: an idle connection (no byte received) is closed after this long.
 * HAProxy reconnects on demand, and its own "timeout idle" is shorter. */
#define SPOA_IDLE_TIMEOUT_S        300.0

/* Agent: how long SIGTERM waits for in-flight frames before exiting anyway. */
#define SPOA_STOP_GRACE_S          5.0

/* Agent: worker threads at most. */
#define SPOA_MAX_WORKERS           64

/* Agent: SPOE messages with a handler (realms-inspect, realms-request,
 * realms-attempt ...). Registering one more fails at start; a message
 * without a handler is answered with an empty ACK. */
#define SPOA_MAX_HANDLERS          16

/* Agent: a connection's input buffer starts this small and grows to the
 * negotiated frame size (memory, not an error). */
#define SPOA_BUF_INIT              4096u

/* Agent: output has no hard ceiling of its own: reading stops at
 * SPOA_WBUF_HIGH, so what can still arrive is bounded by the ACKs of
 * frames in flight. An ACK that would pass it cannot be queued: the
 * connection is closed with AGENT-DISCONNECT status 13 (resource). */
#define SPOA_OUT_CEILING           ((size_t)SPOA_MAX_INFLIGHT * (SPOP_MAX_FRAME_SIZE + 4) + \
                                    SPOA_WBUF_HIGH)

/* Agent: a closing connection whose peer does not read what is left is
 * dropped after this long. */
#define SPOA_IO_CLOSE_TIMEOUT_S    2.0

/* Agent: reads per readiness event on one connection, so a busy peer
 * cannot starve the others on its worker (it is read again next round). */
#define SPOA_IO_READS_PER_EVENT    4

/* Agent: per-worker modules (Redis clients, mirror, admission ...). One more
 * fails at start. */
#define WORKER_MAX_MODULES         8

/* Agent: listen(2) backlog of the SPOP and mirror listeners. Past it the
 * kernel refuses or delays new connections; HAProxy retries. */
#define AGENT_BACKLOG              1024
/* Agent: after EMFILE/ENFILE the acceptor pauses this long instead of
 * spinning; connections wait in the backlog meanwhile. */
#define AGENT_ACCEPT_PAUSE_S       0.1
/* Agent: at most one log line per this many seconds about refused peers
 * (every one is still refused). */
#define AGENT_REFUSED_LOG_S        10.0
/* Agent: where usage records wait while Redis is unreachable, unless -s
 * or agent.spool say otherwise. */
#define AGENT_SPOOL_DEFAULT        "/var/lib/realms/spool"
/* Records: how often worker 0 replays the spool while it holds records. */
#define SPOOL_REPLAY_EVERY_S       1.0

/* Admin HTTP (admin.c): a request must arrive whole within
 * ADMIN_TIMEOUT_S and ADMIN_REQ_MAX bytes, headers included; otherwise the
 * connection is closed without an answer. */
#define ADMIN_REQ_MAX              4096
#define ADMIN_TIMEOUT_S            2.0
/* Admin HTTP: largest /metrics page; a larger one is answered 500. The
 * usage tables at their caps (UMETRICS_*_MAX) with the longest names stay
 * well below it. */
#define ADMIN_BODY_MAX             (4 * 1024 * 1024)
/* Admin HTTP: connections reading their request at once; past it a new
 * one is closed at once (idle peers cannot take the descriptors the SPOP
 * and mirror listeners share; each waits ADMIN_TIMEOUT_S at most). */
#define ADMIN_CONNS_MAX            64
/* Admin HTTP: listen(2) backlog (scrapers connect one at a time). */
#define ADMIN_BACKLOG              64

/* Request handler: largest SPOE variable value it builds (a refusal's
 * body, the /v1/models list). A models list past it is answered 500
 * api_error "the model list is too large". */
#define REQ_BODY_VAR_MAX           65536

/* Scheduler: candidates whose availability fits on the stack; past it it
 * lives on the heap (memory, not an error). */
#define SCHED_STACK_CANDS          64

/* Body inspection: top-level keys of a request body at most (the Messages
 * API has about twenty). More: 400 invalid_request_error; the body guard
 * (lua-shim) holds the same bound (GUARD_KEYS_MAX) past the prefix, so a
 * body cannot make either keep millions of keys. */
#define INSPECT_KEYS_MAX           64

/* Body inspection: longest model name accepted (decoded bytes). Longer
 * values are "not a model name" and refused by the verdict. */
#define INSPECT_MODEL_MAX          256

/* Body inspection: longest metadata.user_id kept (decoded bytes); longer
 * ones are ignored (no stickiness from the body). */
#define INSPECT_USER_ID_MAX        512

/* Token cache: entries kept (positive and negative), shared by workers. When
 * full, the oldest entry of a probe window is replaced. */
#define TOKCACHE_SLOTS             8192
#define TOKCACHE_PROBE             8

/* Token cache: a found token is trusted this long without asking Redis. */
#define TOKCACHE_TTL_MS            30000
/* Token cache: an unknown token is remembered as unknown this long. */
#define TOKCACHE_NEG_TTL_MS        5000
/* Token cache: while Redis cannot answer, a known token is still served
 * this long past its TTL (a Redis blip must not stop known users). Unknown
 * tokens get 503 api_error meanwhile, never a pass. */
#define TOKCACHE_STALE_MS          120000

/* Attempts: requests in flight whose tried credentials are remembered
 * (tried.c), and the probe window of that table. Past it, the oldest entry
 * is forgotten: that request's next retry may reuse a credential it
 * already tried. At 1,000 requests per second with 3 attempts each, an
 * entry lives far longer than its request needs it. */
#define TRIED_SLOTS                16384
#define TRIED_PROBE                8
/* Attempts: credentials remembered per request, the most recent kept
 * (failover.attempts is at most CFG_ATTEMPTS_MAX). */
#define TRIED_MAX_PER_REQ          10
/* Attempts: how long a request's tried list outlives its last attempt,
 * beyond failover.attempts x failover.timeout. */
#define TRIED_SLACK_MS             60000

/* Breakers: the longest retry-after honoured. A provider asking for more
 * is believed for an hour, then tried again. */
#define HEALTH_RETRY_AFTER_MAX_S   3600

/* Sessions moved off their first choice (stick.c): sessions remembered,
 * and the probe window of that table. Only sessions whose first credential
 * failed or was out hold an entry. Past it, the oldest entry of the window
 * is forgotten: that session's next turn goes to its first choice again
 * (one more prompt-cache rebuild, never a refusal). */
#define STICK_SLOTS                8192
#define STICK_PROBE                8
/* Sessions: how long a session stays on the credential it moved to after
 * its last turn there (refreshed on every turn). Anthropic's prompt cache
 * lives 5 minutes to an hour; past this the session goes back to its first
 * choice, whose cache is as cold as any. */
#define STICK_TTL_MS               3600000ull

/* Key probes (probe.c): one probe (connect, TLS, answer) taking longer
 * than this proves nothing about the key; it is tried again after a
 * cooldown. */
#define PROBE_TIMEOUT_S            10
/* Key probes: how often the prober looks for due probes when nothing woke
 * it (a 401 wakes it at once). */
#define PROBE_ROUND_S              1.0
/* Key probes: bytes of a probe's answer read before giving up the rest
 * (only its status matters). */
#define PROBE_BODY_MAX             (64u * 1024u)

/* Redis: a command not answered within this long is answered "unavailable"
 * to its caller (hiredis 0.14 has no async timeouts of its own). */
#define RDB_CMD_TIMEOUT_S          0.5
/* Redis: a connection attempt is abandoned after this long. */
#define RDB_CONNECT_TIMEOUT_S      1.0
/* Redis: reconnect back-off, doubling from MIN to MAX. */
#define RDB_RETRY_MIN_S            0.1
#define RDB_RETRY_MAX_S            2.0
/* Redis: this many timeouts in a row mean a stalled server: reconnect. */
#define RDB_MAX_TIMEOUTS           3

/* ---------------------------------------------------------------------- */
/* Configuration file (config.c) and prices (prices.c). Each limit is      */
/* reported as an error with the JSON path and line; the file is refused. */
/* ---------------------------------------------------------------------- */

/* Configuration: largest file read ("file too large"). */
#define CFG_MAX_FILE_SIZE          (16u * 1024u * 1024u)
/* Configuration: deepest nesting of objects and arrays ("nested too deeply"). */
#define CFG_MAX_DEPTH              32
/* Configuration: longest channel, credential or group name. These names end
 * up as HAProxy identifiers ("<channel>--<credential>"). */
#define CFG_NAME_MAX               64
/* Configuration: model names (public and upstream) are bounded by
 * INSPECT_MODEL_MAX, so any configured name can be matched and rewritten. */
/* Configuration: SPOP listeners in agent.listen (or -l) at most: "at most
 * 8 listeners". The mirror's listener comes on top of them. */
#define CFG_MAX_LISTEN             8
/* Configuration: what an absent setting means: redis (the address),
 * agent.threads, and the group of a token or channel that names none. */
#define CFG_REDIS_DEFAULT          "127.0.0.1:6379"
/* One worker: the agent spends about 0.1 ms of CPU per request, so one
 * thread serves thousands of requests a second, and on a host where
 * HAProxy runs a thread per core a second worker costs more in wakeups
 * than it brings (docs/benchmarks.md, "One agent thread"). */
#define CFG_THREADS_DEFAULT        1
#define CFG_GROUP_DEFAULT          "default"
/* Configuration: longest address string (listeners, mirror, admin,
 * redis): "is longer than 200 bytes". */
#define CFG_ADDR_MAX               200
/* Configuration: longest host name in a base_url (DNS's own limit):
 * "host name too long". */
#define CFG_HOST_MAX               253
/* Configuration: longest JSON path shown with a problem; a deeper path is
 * cut. */
#define CFG_PATH_MAX_LEN           320
/* Configuration: longest key shown in a JSON path; a longer one is cut
 * and ends with "...". Longer keys are also written ["..."], not .key. */
#define CFG_PATH_KEY_MAX           64
/* Configuration: the arena holding a parsed configuration grows by blocks
 * doubling from MIN to MAX bytes (memory, not an error). */
#define CFG_ARENA_MIN_BLK          (16u * 1024u)
#define CFG_ARENA_MAX_BLK          (1024u * 1024u)
/* Configuration: failover.attempts (HAProxy "retries" + 1), its default,
 * and the defaults of the breaker settings (failover.failures,
 * failover.cooldown in seconds) and of failover.timeout (seconds of
 * upstream silence; Claude Code itself waits 600 s). */
#define CFG_ATTEMPTS_MAX           10
#define CFG_ATTEMPTS_DEFAULT       3
#define CFG_FAILURES_DEFAULT       3
#define CFG_COOLDOWN_DEFAULT_S     30
#define CFG_TIMEOUT_DEFAULT_S      600
/* Configuration: failover.max_body, the largest request body retried
 * within the request (bytes). HAProxy keeps the copy it may send again in
 * one tune.bufsize buffer, held by every such request until its response
 * starts, and routes it through the relay (a second stream): a cost per
 * waiting stream, so none by default. Larger bodies, and every body past
 * tune.bufsize whatever this says, go straight to the channel; a failure
 * reaches the client and the credential is avoided by the next requests.
 * Past the maximum: a configuration error. */
#define CFG_RETRY_BODY_DEFAULT     0
#define CFG_RETRY_BODY_MAX         (1024 * 1024)
/* Configuration: failover.avoid, seconds a credential whose attempt just
 * failed is passed over by the next choices (0: never), its default and
 * its largest value. */
#define CFG_AVOID_DEFAULT_S        30
#define CFG_AVOID_MAX_S            3600
/* Configuration: largest secret (credential key, Redis password), inline,
 * from a variable or read from a file; a larger one is an error naming the
 * key, variable or file. */
#define CFG_SECRET_MAX             8192

/* Configuration: shortest agent.admin_token accepted (a shorter one is a
 * configuration error): 32 hex digits are 128 bits, out of reach of
 * guessing over the admin listener. */
#define CFG_ADMIN_TOKEN_MIN        32
/* Configuration: longest Redis ACL user name (redis.user,
 * REALMS_REDIS_USER); a longer one is an error (Redis accepts more, but a
 * name this long is a mistake, and it is logged on every connection). */
#define CFG_REDIS_USER_MAX         128
/* Configuration: problems kept for printing; further ones are counted. */
#define CFG_MAX_PROBLEMS           500
/* Configuration: agent.body_prefix bounds (bytes). The prefix travels in
 * one SPOP frame with the other arguments, so it stays 4 KB under the
 * largest frame. */
#define CFG_BODY_PREFIX_MIN        1024u
#define CFG_BODY_PREFIX_MAX        (SPOP_MAX_FRAME_SIZE - 4096u)
#define CFG_BODY_PREFIX_DEFAULT    122880u
/* Configuration: agent.max_body, the largest request body accepted
 * (bytes), and its bounds. A larger Content-Length is refused with 413
 * request_too_large before anything is forwarded; a chunked body that
 * grows past it is cut and refused with 400 by the body guard. The
 * default is Anthropic's own limit for the Messages API. */
#define CFG_MAX_BODY_DEFAULT       (32ull * 1024 * 1024)
#define CFG_MAX_BODY_MIN           CFG_BODY_PREFIX_MIN
#define CFG_MAX_BODY_MAX           (1024ull * 1024 * 1024)
/* Configuration: agent.record_wait_ms, the longest a usage record waits
 * for others to share its Redis script call (commit.c), and its bounds.
 * Records go at once when the previous call left this long ago or more
 * (an idle agent sends each alone), or when they fill a batch. At 5 ms,
 * under load, a call takes about 9 records rather than 3 to 4, which
 * costs Redis about a quarter less CPU per record; but Redis then works
 * in longer bursts, which on a small host shows in the time to first
 * byte at p99 (docs/benchmarks.md, "Usage records: waiting to share a
 * call"), so the default is no wait. A request's usage shows in Redis up
 * to this much later. */
#define CFG_RECORD_WAIT_MS_DEFAULT 0
#define CFG_RECORD_WAIT_MS_MAX     1000
/* Configuration: the longest path prefix of a base_url (bytes). */
#define CFG_PATH_PREFIX_MAX        256
/* Configuration: channels[].headers at most, and the longest name. Each
 * travels in its own SPOE variable (txn.realms.h0 ...), so the SPOE
 * configuration registers that many. */
#define CFG_MAX_HEADERS            8
#define CFG_HEADER_NAME_MAX        64
/* Configuration: users in agent.peers at most. */
#define CFG_MAX_PEERS              16
/* Agent: allowed peers at most: agent.peers, root, the agent's own user
 * and "haproxy". A connection from anyone else is closed at once. */
#define PEERS_MAX                  (CFG_MAX_PEERS + 3)
/* Configuration: channel weight bounds (HAProxy's server weight range);
 * 0 drains the channel. */
#define CFG_WEIGHT_MAX             256
/* Configuration: channel priority bounds (a larger number is preferred). */
#define CFG_PRIORITY_MIN           (-1000000)
#define CFG_PRIORITY_MAX           1000000
/* Configuration: groups at most (each channel keeps a bitmap of them). */
#define CFG_MAX_GROUPS             4096
/* Prices: largest price accepted, USD per million tokens (keeps every
 * nano-USD product of a request far from 64-bit overflow). */
#define PRICE_MAX_USD_PER_MTOK     100000.0

/* ---------------------------------------------------------------------- */
/* Response accounting: SSE parsing (sse.c) and usage extraction         */
/* (usage.c, meter.c). Crossing these never fails the client's answer:   */
/* the event or body is counted as dropped/unparsed and the record is  */
/* marked partial (USAGE_PARTIAL_UNPARSED) by the caller.              */
/* ---------------------------------------------------------------------- */

/* SSE: data bytes buffered for one event the agent wants (or whose name is
 * not known yet). Usage-bearing Anthropic events (message_start,
 * message_delta, error) are well under 4 KB; a bigger one is dropped
 * (sse_parser.dropped) and skipped to its blank line. The buffer lives in
 * struct sse_parser, one per streamed answer. */
#define SSE_DATA_MAX               (64u * 1024u)
/* SSE: longest event name kept. A longer name cannot be one the agent
 * knows: its event is dropped like an oversized one. */
#define SSE_NAME_MAX               64u

/* Usage: bytes of the root "usage" object of a non-streamed JSON answer
 * kept to read it (the answer itself is scanned as it arrives, never
 * stored, at any size and depth). Anthropic's is under 1 KB; a bigger one
 * is unreadable: the record is partial (unparsed). */
#define USAGE_OBJ_MAX              (64u * 1024u)

/* Budgets: the largest amount a limit may name (US dollars), and the
 * largest count (rpm, concurrency). A larger one is refused where it is
 * written (realmsctl, the configuration). */
#define BUDGET_USD_MAX             1000000000ULL
#define BUDGET_COUNT_MAX           1000000000ULL
/* Budgets: the rolling usd/5h window, in minute buckets (a bare literal:
 * the Redis scripts spell it with LIMIT_STR). */
#define BUDGET_5H_BUCKETS          300
/* Budgets: times handled (9999-12-31T23:59:59.999Z). */
#define BUDGET_TIME_MAX_MS         INT64_C(253402300799999)

/* GET /api/usage: models listed under today's by_model at most (the
 * rest: "by_model_cut": true); the answer stays far below the SPOE
 * variable it travels in. */
#define SELFUSAGE_MODELS_MAX       32

/* Admission: how long a reservation or an in-flight slot may outlive its
 * request's start when its record never commits while its gateway lives
 * (a request whose answer never came back at all). Longer than any
 * stream Claude Code waits for. */
#define ADMIT_LEASE_MS             (2LL * 3600 * 1000)
/* Admission: a gateway's heartbeat lives this long and is refreshed every
 * ADMIT_GW_BEAT_MS: the slots and reservations of a gateway that died are
 * dropped within ADMIT_GW_TTL_MS. */
#define ADMIT_GW_TTL_MS            30000
#define ADMIT_GW_BEAT_MS           10000
/* Admission: retry-after of a 429 when reservations in flight fill a
 * budget (they free as those requests finish), and when requests in
 * flight reach the concurrency limit. */
#define ADMIT_RESERVED_RETRY_S     5
#define ADMIT_CONCURRENCY_RETRY_S  2

/* Admission: the output a request is assumed to ask for when its
 * max_tokens is not within the prefix the agent reads (Claude Code writes
 * it after messages): Claude Code's own default. */
#define BUDGET_DEFAULT_MAX_TOKENS  32000

/* Records: at most one log line per this many ms about answers naming
 * another model than the one billed (every one is counted). */
#define RECORDS_MISMATCH_LOG_MS    10000
/* Usage metrics (umetrics.c): series kept per table. Past a cap, a new
 * name is counted under "other" (one more series) and in
 * realms_usage_series_overflow_total. Models and channels come from the
 * configuration, so model x channel pairs stay well below the cap; token
 * names come from Redis, hence a cap on tokens tracked
 * (agent.metrics_tokens). Sized so the metrics page of full tables stays
 * far below ADMIN_BODY_MAX. */
#define UMETRICS_PAIRS_MAX         128
#define UMETRICS_GROUPS_MAX        128
#define UMETRICS_TOKENS_MAX        500
/* Estimates (usage.c): bytes of text per token when the provider did not
 * say, Anthropic's own rule of thumb for English text (about 4
 * characters a token). An estimated record says so (flag estimated). */
#define USAGE_EST_BYTES_PER_TOKEN  4u
/* Estimates: bytes on the wire per byte of text of a typical text delta
 * (about 120 bytes of event for a few words), for the middle of a stream
 * when no delta of its head or tail could be measured. */
#define USAGE_EST_DELTA_BYTES_PER_TEXT_BYTE  12u

/* ---------------------------------------------------------------------- */
/* Response mirror: the tap's frames (decoded by mframe.c, served by     */
/* mirror.c; the wire format is in realms/mframe.h). Crossing any limit  */
/* below but MIRROR_OUT_HIGH is a protocol error: the agent logs it,     */
/* counts it (realms_mirror_protocol_errors_total) and closes the        */
/* connection. The tap then sends every unacknowledged request again,    */
/* from its B frame, on its next connection, so no record is lost (the   */
/* O frames queued behind the error are: they are never resent).         */
/* ---------------------------------------------------------------------- */

/* Mirror: longest header line, its "\n" included. The longest valid one,
 * "O <server> 8192\n", is 138 bytes. A line that has not ended within
 * this many bytes is refused as soon as they arrive. */
#define MIRROR_HDR_MAX             160u
/* Mirror: longest request id (HAProxy's unique-id; Realms makes
 * "req_<uuid>", 40 bytes). It is the record's idempotency key and fits
 * usage_record.req_id. */
#define MIRROR_RID_MAX             63u
/* Mirror: longest server name in an O frame, "<channel>--<credential>". */
#define MIRROR_SERVER_MAX          (2u * CFG_NAME_MAX + 2u)
/* Mirror: longest sync number in an S frame (digits of a 64-bit counter). */
#define MIRROR_SEQ_MAX             20u
/* Mirror: largest payload of a meta frame (B, G, E, O). It is buffered
 * whole; the tap's are a few hundred bytes. */
#define MIRROR_META_MAX            8192u
/* Mirror: longest token or group name an X frame may carry (a record's
 * name fields hold 256 bytes); longer: the frame is ignored. */
#define MIRROR_META_NAME_MAX       256u
/* Mirror: largest payload of a D frame. It is never buffered (the bytes go
 * to the meter as they arrive); the tap's are one HAProxy buffer at most
 * (tune.bufsize, 128 KB). */
#define MIRROR_FRAME_MAX           (64u * 1024u * 1024u)
/* Mirror: requests open (a B frame, its E not yet seen) on one connection.
 * Each holds a meter (about 70 KB of address space for an event stream, of
 * which a few KB are touched), so this bounds a connection's memory. The
 * tap has one connection per HAProxy thread and opens a request per
 * answer in progress on that thread: 10,000 streams held on two threads
 * need 5,000 each. Keep HAProxy's concurrent billable answers per thread
 * below this, or the connection is closed again on each resend. */
#define MIRROR_OPEN_MAX            16384u
/* Mirror: acknowledgements waiting to be written before the agent stops
 * reading from the connection (back-pressure, not an error). */
#define MIRROR_OUT_HIGH            (1024u * 1024u)
/* Mirror: hash buckets of a connection's open-request table (speed only;
 * MIRROR_OPEN_MAX bounds the requests). */
#define MIRROR_BUCKETS             256
/* Mirror: a connection's input buffer. One read lands behind what is left
 * of an incomplete frame, so a read always has at least
 * MIRROR_IN_SIZE - MFRAME_PENDING_MAX bytes of room (mirror.c checks it). */
#define MIRROR_IN_SIZE             65536

/* ---------------------------------------------------------------------- */
/* realmsctl (ctl/). Each one's failure is an error on stderr, exit 1.   */
/* ---------------------------------------------------------------------- */

/* realmsctl: Redis connect and per-command timeout (seconds); past it the
 * command fails. The man page says "2 seconds". */
#define CTL_REDIS_TIMEOUT_S        2
/* realmsctl: token add: EXEC attempts when another writer touched the name
 * index between WATCH and EXEC (each attempt is a few round trips). */
#define CTL_ADD_ATTEMPTS           16
/* realmsctl: usage: HGETALLs sent before their replies are read (one batch
 * of latency; memory, not an error). */
#define CTL_USAGE_BATCH            512
/* realmsctl: usage: the default range, from this many days before today
 * to today ("default: 30 days ago to today"). */
#define CTL_USAGE_DAYS             30

/* Dashboard (dash.c): the longest range of days /api/admin/usage sums; a
 * longer one gets 400. A quarter covers the usual question. */
#define DASH_DAYS_MAX              92
/* Dashboard: counter hashes one /api/admin/usage request may read (each
 * day's tokens, models and channels). More: 422, "narrow the range". */
#define DASH_HASHES_MAX            20000
/* Dashboard: tokens whose budgets one request reads (the first in name
 * order); the others are listed without, and the answer says so. */
#define DASH_TOKENS_MAX            200
/* Dashboard: events /api/admin/events returns at most, and by default. */
#define DASH_EVENTS_MAX            200
#define DASH_EVENTS_DEFAULT        50
/* Dashboard: requests in progress at once; one more gets 503 at once, so
 * a local user looping on the API cannot pile up Redis work. */
#define DASH_REQS_MAX              16
/* Dashboard: an answer not ready (Redis slow) after this long gets 504. */
#define DASH_TIMEOUT_S             5.0
/* Dashboard: how long a request waits for the Redis connection to come up
 * (the first request after a start or a reload) before 503. */
#define DASH_WAIT_UP_S             1.5
/* Dashboard: the largest answer built (JSON); larger: 500. */
#define DASH_OUT_MAX               (8u * 1024 * 1024)
/* Dashboard: the largest Chart.js file served; larger: 404 and logged. */
#define DASH_CHARTJS_MAX           (2u * 1024 * 1024)

#endif /* REALMS_LIMITS_H */
