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
};

#define VERDICT_MSG_MAX     512
#define VERDICT_SESSION_MAX 128

struct verdict {
	int status;                  /* 0: allowed; else the HTTP status */
	const char *err_type;        /* Anthropic error type when refused */
	char err_msg[VERDICT_MSG_MAX];
	enum route route;

	/* allowed messages/count_tokens requests */
	struct inspect_result insp;
	const struct cfg_model *model;     /* NULL for a passed-through model */
	const struct cfg_cred *cred;       /* the primary credential */
	const struct cfg_binding *binding; /* its channel's binding */
	char session[VERDICT_SESSION_MAX + 1];  /* stickiness key, "" if none */
};

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

/* The GET /v1/models body for a token of group g: every enabled model
 * with at least one enabled channel and credential open to the group, in
 * Anthropic's list shape. Returns its length, or -1 if it did not fit. */
long verdict_models_body(const struct realms_config *cfg, int group,
                         char *out, size_t size);

/* The session key from metadata.user_id's value (decoded string): the JSON
 * form {"session_id":"..."} or the legacy "user_..._session_<uuid>".
 * Returns the key's length (0 if none) and writes it NUL-terminated. */
size_t verdict_session_from_user_id(const char *uid, size_t len, char *out, size_t size);

/* HAProxy backend holding a model's credentials: "pool_<model>" with the
 * name encoded for HAProxy ('_' doubled, bytes outside [A-Za-z0-9.:-] as
 * "_hh"), or "pool__passthrough" for passed-through unknown models. */
int verdict_pool_name(const struct verdict *v, char *out, size_t size);

/* The attempt ("realms-attempt"): for the credential HAProxy picked for
 * this try, where to send the request and how to rewrite its body. */
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

/* server: HAProxy's server name; model: the public model name; off/len:
 * the model's JSON string token in the body; clen: the body's length
 * (-1 when chunked: no Content-Length to set). Returns 0, or -1 with
 * a->error set. The rewrite replaces exactly [off, off+len) with the new
 * token; no other byte of the body changes. */
int verdict_attempt(const struct realms_config *cfg, struct vslice server,
                    struct vslice model, int64_t off, int64_t len, int64_t clen,
                    struct attempt *a);

#endif /* REALMS_VERDICT_H */
