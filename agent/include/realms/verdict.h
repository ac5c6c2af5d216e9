/*
 * The request verdict ("realms-request"): a pure function of the request's
 * facts, the configuration and the token's record. No I/O: the handler
 * (hdl_request.c) fetches the token record and turns the result into SPOE
 * variables.
 *
 * Decided in this order, so nothing about models or channels is revealed
 * before the client authenticated:
 *   route and method -> token present -> [token lookup] -> token status ->
 *   group -> content type -> body -> model -> group permission -> channel.
 */
#ifndef REALMS_VERDICT_H
#define REALMS_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include <realms/config-t.h>
#include <realms/inspect-t.h>
#include <realms/sched.h>
#include <realms/tokcache-t.h>

enum route {
	ROUTE_NONE = 0,          /* refused: 404 or 405 */
	ROUTE_MESSAGES,          /* POST /v1/messages */
	ROUTE_COUNT_TOKENS,      /* POST /v1/messages/count_tokens */
	ROUTE_MODELS,            /* GET /v1/models */
	ROUTE_HELLO,             /* HEAD|GET /api/hello: no auth */
	ROUTE_USAGE,             /* GET /api/usage: the token's own usage */
};

/* A byte range borrowed from the NOTIFY being answered. */
struct vslice {
	const char *p;
	size_t len;
};

struct verdict_in {
	struct vslice method;
	struct vslice path;          /* without the query string */
	struct vslice auth;          /* Authorization header */
	struct vslice apikey;        /* x-api-key header */
	struct vslice session;       /* X-Claude-Code-Session-Id header */
	struct vslice ctype;         /* Content-Type header */
	const char *body;            /* body prefix */
	size_t body_len;             /* its length */
	uint64_t body_size;          /* the whole body's length */
	int body_size_known;         /* 0 for chunked bodies not fully received */
	size_t body_prefix;          /* the prefix limit in force (for messages) */
	uint64_t max_body;           /* the largest body accepted (agent.max_body) */
	struct vslice rid;           /* the request's id (HAProxy's unique-id) */
	struct vslice beta;          /* anthropic-beta header (whole value) */
	int beta_count;              /* how many anthropic-beta headers came */
};

#define VERDICT_MSG_MAX     512
#define VERDICT_SESSION_MAX 128
/* anthropic-beta after filtering: at most this many values of at most
 * VERDICT_BETA_NAME_MAX bytes each are passed on. */
#define VERDICT_BETA_MAX      32
#define VERDICT_BETA_NAME_MAX 64

struct attempt {
	const struct cfg_cred *cred;
	const struct cfg_binding *binding;
	char backend[160];           /* "up_<channel>" */
	int rewrite;                 /* the body's model must change */
	char model_new[2 * INSPECT_MODEL_MAX + 8];  /* JSON string token */
	size_t model_new_len;
	int64_t clen_new;            /* Content-Length after the rewrite */
	const char *error;           /* why the attempt cannot be made */
};

struct verdict {
	int status;                  /* 0: allowed; else the HTTP status */
	int retry_after_s;           /* with a 429: the retry-after to send */
	const char *err_type;        /* Anthropic error type when refused */
	char err_msg[VERDICT_MSG_MAX];
	enum route route;

	/* allowed messages/count_tokens requests */
	struct inspect_result insp;
	const struct cfg_model *model;     /* NULL for a passed-through model */
	const struct cfg_cred *cred;       /* the primary credential */
	const struct cfg_binding *binding; /* its channel's binding */
	char session[VERDICT_SESSION_MAX + 1];  /* stickiness key, "" if none */
	/* The anthropic-beta value to send upstream, "" for none (see
	 * verdict_beta). */
	char beta[VERDICT_BETA_MAX * (VERDICT_BETA_NAME_MAX + 1)];
	/* Where it goes: through the pool and the relay, which retry it
	 * within the request (a body of at most failover.max_body bytes, with
	 * attempts left), else straight to its channel: `first` is then the
	 * attempt, as the relay would have made it. */
	int retry;
	struct attempt first;
};

/* The client's anthropic-beta values the gateway passes on: each value
 * trimmed, empty ones and duplicates dropped, values outside
 * [A-Za-z0-9._-]{1,64} dropped, at most VERDICT_BETA_MAX kept, and every
 * value naming an OAuth scheme ("oauth-*") dropped: such a beta makes the
 * provider read the injected Bearer key as an OAuth token, so a client
 * could make any credential answer 401. Writes the comma-separated result
 * into out (size bytes, NUL-terminated; "" for none). Returns its length. */
size_t verdict_beta(struct vslice in, char *out, size_t size);

/* Route and method. Returns the route; on ROUTE_NONE v holds the refusal. */
enum route verdict_route(const struct verdict_in *in, struct verdict *v);

/* The client's token from "Authorization: Bearer" or "x-api-key" (Bearer
 * first). Returns 0 and the token, or -1 with the 401 set in v. */
int verdict_token(const struct verdict_in *in, struct vslice *tok, struct verdict *v);

/* Everything after the token lookup. `tok` is the record (status
 * TOK_UNKNOWN: no such token); now is unix seconds. Fills v. */
void verdict_decide(const struct realms_config *cfg, const struct verdict_in *in,
                    const struct tok_info *tok, int64_t now,
                    const struct sched_env *env, struct verdict *v);

/* Refusal for when the token store cannot answer and the token is not in
 * the cache: 503 api_error, never a pass. */
void verdict_store_down(struct verdict *v);

/* Writes {"type":"error","error":{"type":...,"message":...}}. Returns its
 * length, or -1 if it did not fit. */
long verdict_error_body(const struct verdict *v, char *out, size_t size);

/* The GET /v1/models body for a token of group g whose model list is
 * `models` (NULL or "": all): every enabled model with at least one
 * enabled channel and credential open to the group and on the list, in
 * Anthropic's list shape. Returns its length, or -1 if it did not fit. */
long verdict_models_body(const struct realms_config *cfg, int group, const char *models,
                         char *out, size_t size);

/* Whether a token's model list (comma-separated public names; NULL or ""
 * for every model) holds name[0..len). */
int verdict_token_allows(const char *models, const char *name, size_t len);

/* The session key from metadata.user_id's value (decoded string): the JSON
 * form {"session_id":"..."} or the legacy "user_..._session_<uuid>".
 * Returns the key's length (0 if none) and writes it NUL-terminated. */
size_t verdict_session_from_user_id(const char *uid, size_t len, char *out, size_t size);

/* The HAProxy backend of the requests retried within the request
 * (rendered by realmsctl): it sends each attempt to the relay, which asks
 * the agent for the credential (realms-attempt), and retries failed
 * attempts. The others go straight to up_<channel>. */
#define VERDICT_POOL "realms_pool"

/* The credentials that may serve model m (NULL: the passed-through name
 * name[0..name_len)) for group g: the channel enabled and binding it, the
 * credential enabled, the channel open to the group. The arrays are
 * parallel, allocated in one block; free with verdict_cands_free. */
struct verdict_cands {
	struct sched_cand *c;
	const struct cfg_cred **cred;
	const struct cfg_binding **bind;
	size_t n;
	size_t bound;               /* enabled and bound, in any group */
};
int verdict_cands_build(const struct realms_config *cfg, const struct cfg_model *m,
                        const char *name, size_t name_len, int group,
                        struct verdict_cands *out);
void verdict_cands_free(struct verdict_cands *vc);

struct tried;

/* The attempt ("realms-attempt"): which credential this try of the
 * request uses, where to send it and how to rewrite its body. HAProxy
 * retries by sending the same request to the relay again; the agent
 * chooses the credential of every attempt. */
struct attempt_in {
	struct vslice primary;       /* the verdict's credential (server name) */
	struct vslice model;         /* the public model name */
	struct vslice group;         /* the token's group */
	struct vslice session;       /* stickiness key, may be empty */
	int64_t off, len;            /* the model's JSON string token in the body */
	int64_t clen;                /* the body's length, -1 when chunked */
	const struct tried *tried;   /* credentials the request already used */
};


/* Chooses the credential: for a first attempt (nothing tried) the verdict's
 * primary when it still may serve; otherwise, among the credentials of the
 * token's group bound to the model, enabled and available (env), the
 * scheduler's pick of those not tried yet (avoided ones last, tiers,
 * weights, stickiness), else of those available again. With env->stick
 * and a session, the credential the session moved to comes first while
 * it is usable in the pick's tier, and a move off its first choice is
 * remembered (stick.h); verdict_decide does the same for first choices.
 * The model, the group and every credential are checked against cfg on
 * each attempt: a disabled model, channel or credential, or one outside
 * the group, is never used.
 * Returns 0, or -1 with a->error set (no credential: the relay refuses the
 * attempt). The rewrite replaces exactly [off, off+len) with the new
 * token; no other byte of the body changes. */
int verdict_attempt(const struct realms_config *cfg, const struct attempt_in *in,
                    const struct sched_env *env, struct attempt *a);

#endif /* REALMS_VERDICT_H */
