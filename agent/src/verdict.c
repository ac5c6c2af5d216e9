/*
 * The request verdict. See verdict.h for the order of decisions.
 *
 * Error types and statuses follow Anthropic's API: 401 authentication_error,
 * 403 permission_error, 404 not_found_error, 400 invalid_request_error,
 * 503 overloaded_error / api_error. Messages name what the client sent (the
 * model) and never a channel, a key or an internal address.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <realms/config.h>
#include <realms/inspect.h>
#include <realms/json.h>
#include <realms/verdict.h>

static void refuse(struct verdict *v, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void refuse(struct verdict *v, int status, const char *type, const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	v->err_type = type;
	va_start(ap, fmt);
	vsnprintf(v->err_msg, sizeof(v->err_msg), fmt, ap);
	va_end(ap);
}

static int slice_is(struct vslice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* Printable excerpt of client input for a message: at most 100 bytes; the
 * error body builder JSON-escapes it. */
static int excerpt_len(size_t len)
{
	return len > 100 ? 100 : (int)len;
}

/* ---------------------------------------------------------------------- */
/* Route, method, token                                                   */
/* ---------------------------------------------------------------------- */

enum route verdict_route(const struct verdict_in *in, struct verdict *v)
{
	enum route r = ROUTE_NONE;
	const char *allowed = NULL;

	memset(v, 0, sizeof(*v));
	if (slice_is(in->path, "/v1/messages")) {
		r = ROUTE_MESSAGES;
		allowed = "POST";
	} else if (slice_is(in->path, "/v1/messages/count_tokens")) {
		r = ROUTE_COUNT_TOKENS;
		allowed = "POST";
	} else if (slice_is(in->path, "/v1/models")) {
		r = ROUTE_MODELS;
		allowed = "GET";
	} else if (slice_is(in->path, "/api/hello")) {
		if (slice_is(in->method, "HEAD") || slice_is(in->method, "GET"))
			return v->route = ROUTE_HELLO;
		refuse(v, 405, "invalid_request_error",
		       "Method %.*s is not allowed on /api/hello; use HEAD or GET",
		       excerpt_len(in->method.len), in->method.p);
		return ROUTE_NONE;
	} else {
		refuse(v, 404, "not_found_error", "Not found: %.*s",
		       excerpt_len(in->path.len), in->path.p);
		return ROUTE_NONE;
	}
	if (!slice_is(in->method, allowed)) {
		refuse(v, 405, "invalid_request_error",
		       "Method %.*s is not allowed on %.*s; use %s",
		       excerpt_len(in->method.len), in->method.p,
		       (int)in->path.len, in->path.p, allowed);
		return ROUTE_NONE;
	}
	return v->route = r;
}

static struct vslice trim(struct vslice s)
{
	while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return s;
}

int verdict_token(const struct verdict_in *in, struct vslice *tok, struct verdict *v)
{
	struct vslice a = trim(in->auth);

	if (a.len) {
		if (a.len > 7 && strncasecmp(a.p, "Bearer ", 7) == 0) {
			struct vslice t = { a.p + 7, a.len - 7 };

			*tok = trim(t);
			if (tok->len)
				return 0;
		}
		if (!trim(in->apikey).len) {
			refuse(v, 401, "authentication_error",
			       "Authorization header must be \"Bearer <token>\"");
			return -1;
		}
	}
	*tok = trim(in->apikey);
	if (tok->len)
		return 0;
	refuse(v, 401, "authentication_error",
	       "an API token is required: send x-api-key or Authorization: Bearer "
	       "(ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN in Claude Code)");
	return -1;
}

void verdict_store_down(struct verdict *v)
{
	refuse(v, 503, "api_error",
	       "the gateway cannot verify API tokens right now (token store "
	       "unreachable); retry in a few seconds");
}

/* ---------------------------------------------------------------------- */
/* After the token                                                        */
/* ---------------------------------------------------------------------- */

static int is_json_ctype(struct vslice ct)
{
	struct vslice mt = ct;
	const char *semi;

	if (!ct.len)
		return 0;
	semi = memchr(ct.p, ';', ct.len);

	if (semi)
		mt.len = (size_t)(semi - ct.p);
	mt = trim(mt);
	return mt.len == 16 && strncasecmp(mt.p, "application/json", 16) == 0;
}

static int session_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == ':';
}

/* Copies a session id if it is a plausible one (bounded, plain charset). */
static size_t session_copy(const char *s, size_t len, char *out, size_t size)
{
	if (!len || len >= size)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!session_char_ok(s[i]))
			return 0;
	memcpy(out, s, len);
	out[len] = '\0';
	return len;
}

size_t verdict_session_from_user_id(const char *uid, size_t len, char *out, size_t size)
{
	static const char jkey[] = "\"session_id\"";
	static const char lkey[] = "_session_";
	const char *p, *end = uid + len, *q;

	out[0] = '\0';
	/* JSON form: {"device_id":"...","account_uuid":"","session_id":"<uuid>"} */
	p = memmem(uid, len, jkey, sizeof(jkey) - 1);
	if (p) {
		p += sizeof(jkey) - 1;
		while (p < end && (*p == ' ' || *p == ':'))
			p++;
		if (p < end && *p == '"') {
			p++;
			q = memchr(p, '"', (size_t)(end - p));
			if (q)
				return session_copy(p, (size_t)(q - p), out, size);
		}
		return 0;
	}
	/* Legacy form: user_<hash>_account_<uuid>_session_<uuid> */
	p = memmem(uid, len, lkey, sizeof(lkey) - 1);
	if (p) {
		p += sizeof(lkey) - 1;
		return session_copy(p, (size_t)(end - p), out, size);
	}
	return 0;
}

/* The body checks; returns 0 when the model is known to the verdict. */
static int check_body(const struct verdict_in *in, struct verdict *v)
{
	struct inspect_result *r = &v->insp;
	uint64_t size = in->body_size_known ? in->body_size : (uint64_t)in->body_len + 1;

	if (!is_json_ctype(in->ctype)) {
		refuse(v, 400, "invalid_request_error",
		       "Content-Type must be application/json");
		return -1;
	}
	inspect_body(in->body, in->body_len, (size_t)size, r);
	switch (r->status) {
	case INSPECT_EMPTY:
		refuse(v, 400, "invalid_request_error",
		       "request body is empty; expected a JSON object");
		return -1;
	case INSPECT_NOT_OBJECT:
		refuse(v, 400, "invalid_request_error", "request body must be a JSON object");
		return -1;
	case INSPECT_INVALID:
		refuse(v, 400, "invalid_request_error", "request body is not valid JSON");
		return -1;
	case INSPECT_DUPLICATE_KEY:
		refuse(v, 400, "invalid_request_error",
		       "request body has a duplicate top-level key");
		return -1;
	case INSPECT_OK:
		break;
	}
	if (r->model_state == INSPECT_KEY_ABSENT) {
		if (r->complete)
			refuse(v, 400, "invalid_request_error", "model: Field required");
		else
			refuse(v, 400, "invalid_request_error",
			       "model: not found in the first %zu bytes of the request "
			       "body; this gateway reads only that much before routing "
			       "(operators: raise agent.body_prefix and the SPOE "
			       "bytes() limit together)", in->body_len);
		return -1;
	}
	if (r->model_state == INSPECT_KEY_WRONG_TYPE) {
		if (r->model_too_long)
			refuse(v, 400, "invalid_request_error",
			       "model: must be at most %d bytes", INSPECT_MODEL_MAX);
		else
			refuse(v, 400, "invalid_request_error",
			       "model: must be a string naming a model");
		return -1;
	}
	return 0;
}

/* Collects the credentials that may serve the request into c[] (allocated,
 * caller frees), with the binding of each in b[]. Counts what is bound at
 * all (enabled) in *bound. */
static size_t candidates(const struct realms_config *cfg, const struct cfg_model *m,
                         const char *name, size_t name_len, int group,
                         struct sched_cand **c, const struct cfg_cred ***cr,
                         const struct cfg_binding ***b, size_t *bound)
{
	size_t n = 0, cap = cfg->n_creds ? cfg->n_creds : 1;

	*bound = 0;
	*c = malloc(cap * sizeof(**c));
	*cr = malloc(cap * sizeof(**cr));
	*b = malloc(cap * sizeof(**b));
	if (!*c || !*cr || !*b)
		return 0;

	size_t nch = m ? m->n_routes : cfg->n_wildcard;
	for (size_t i = 0; i < nch; i++) {
		const struct cfg_channel *ch = m ? m->routes[i].channel : cfg->wildcard[i];
		const struct cfg_binding *bind = m ? m->routes[i].binding :
			cfg_channel_binding(ch, name, name_len);

		if (!ch->enabled || !bind)
			continue;
		for (size_t k = 0; k < ch->n_creds; k++) {
			const struct cfg_cred *cred = &ch->creds[k];

			if (!cred->enabled)
				continue;
			(*bound)++;
			if (!cfg_channel_in_group(ch, group))
				continue;
			(*c)[n].cred_id = cred->id;
			(*c)[n].priority = ch->priority;
			(*c)[n].weight = ch->weight > 0 ? (uint32_t)ch->weight : 0;
			(*cr)[n] = cred;
			(*b)[n] = bind;
			n++;
		}
	}
	return n;
}

static void choose(const struct realms_config *cfg, const struct verdict_in *in,
                   int group, const struct sched_env *env, struct verdict *v)
{
	const struct inspect_result *r = &v->insp;
	const struct cfg_model *m = config_model(cfg, r->model, r->model_len);
	struct sched_cand *c = NULL;
	const struct cfg_cred **cr = NULL;
	const struct cfg_binding **b = NULL;
	size_t n, bound;
	int pick;

	if (m && !m->enabled)
		m = NULL;
	if (!m && (config_model(cfg, r->model, r->model_len) ||
	           !cfg->agent.allow_unknown_models || !cfg->n_wildcard)) {
		/* Unknown or disabled: strict by default. */
		refuse(v, 404, "not_found_error", "model: %s", r->model);
		return;
	}
	v->model = m;
	n = candidates(cfg, m, r->model, r->model_len, group, &c, &cr, &b, &bound);
	if (!c || !cr || !b) {
		refuse(v, 503, "api_error", "the gateway is out of memory; retry shortly");
	} else if (bound == 0) {
		/* Enabled, but nothing serves it: as unknown to the client. */
		refuse(v, 404, "not_found_error", "model: %s", r->model);
	} else if (n == 0) {
		refuse(v, 403, "permission_error",
		       "model %s is not available to this API token", r->model);
	} else {
		/* Session: the Claude Code header, else metadata.user_id. */
		if (!session_copy(in->session.p, in->session.len, v->session, sizeof(v->session)) &&
		    r->user_id_len)
			verdict_session_from_user_id(r->user_id, r->user_id_len,
			                             v->session, sizeof(v->session));
		pick = sched_pick(c, n, v->session, strlen(v->session), env);
		if (pick < 0) {
			refuse(v, 503, "overloaded_error",
			       "no upstream is available for model %s right now; "
			       "retry shortly", r->model);
		} else {
			v->cred = cr[pick];
			v->binding = b[pick];
		}
	}
	free(c);
	free(cr);
	free(b);
}

void verdict_decide(const struct realms_config *cfg, const struct verdict_in *in,
                    const struct tok_info *tok, int64_t now,
                    const struct sched_env *env, struct verdict *v)
{
	int group;

	switch (tok->status) {
	case TOK_UNKNOWN:
		refuse(v, 401, "authentication_error", "invalid API token");
		return;
	case TOK_REVOKED:
		refuse(v, 401, "authentication_error", "this API token has been revoked");
		return;
	case TOK_ACTIVE:
		break;
	}
	if (tok->expires && now >= tok->expires) {
		struct tm tm;
		time_t t = (time_t)tok->expires;

		gmtime_r(&t, &tm);
		refuse(v, 401, "authentication_error",
		       "this API token expired on %04d-%02d-%02dT%02d:%02d:%02dZ",
		       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		       tm.tm_hour, tm.tm_min, tm.tm_sec);
		return;
	}
	group = config_group_index(cfg, tok->group, strlen(tok->group));
	if (group < 0) {
		refuse(v, 403, "permission_error",
		       "this API token's group is not configured on this gateway");
		return;
	}
	if (v->route == ROUTE_MODELS || v->route == ROUTE_HELLO)
		return;
	if (check_body(in, v) < 0)
		return;
	choose(cfg, in, group, env, v);
}

/* ---------------------------------------------------------------------- */
/* Bodies                                                                 */
/* ---------------------------------------------------------------------- */

long verdict_error_body(const struct verdict *v, char *out, size_t size)
{
	char msg[2 * VERDICT_MSG_MAX + 64];
	long m = json_quote(v->err_msg, strlen(v->err_msg), msg, sizeof(msg));
	int n;

	if (m < 0)
		return -1;
	n = snprintf(out, size, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":%.*s}}",
	             v->err_type ? v->err_type : "api_error", (int)m, msg);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* Whether any enabled channel+credential bound to m is open to group g. */
static int model_open_to(const struct cfg_model *m, int g)
{
	for (size_t i = 0; i < m->n_routes; i++) {
		const struct cfg_channel *ch = m->routes[i].channel;

		if (!ch->enabled || !m->routes[i].binding || !cfg_channel_in_group(ch, g))
			continue;
		for (size_t k = 0; k < ch->n_creds; k++)
			if (ch->creds[k].enabled)
				return 1;
	}
	return 0;
}

long verdict_models_body(const struct realms_config *cfg, int group,
                         char *out, size_t size)
{
	char q[2 * INSPECT_MODEL_MAX + 8];
	const char *first = NULL, *last = NULL;
	size_t off = 0;
	long ql;
	int n;

#define EMIT(...) do { \
		n = snprintf(out + off, size - off, __VA_ARGS__); \
		if (n < 0 || (size_t)n >= size - off) \
			return -1; \
		off += (size_t)n; \
	} while (0)

	EMIT("{\"data\":[");
	for (size_t i = 0; i < cfg->n_models; i++) {
		const struct cfg_model *m = &cfg->models[i];

		if (!m->enabled || !model_open_to(m, group))
			continue;
		ql = json_quote(m->name, m->name_len, q, sizeof(q));
		if (ql < 0)
			return -1;
		EMIT("%s{\"type\":\"model\",\"id\":%.*s,\"display_name\":%.*s,"
		     "\"created_at\":\"1970-01-01T00:00:00Z\"}",
		     first ? "," : "", (int)ql, q, (int)ql, q);
		if (!first)
			first = m->name;
		last = m->name;
	}
	EMIT("],\"has_more\":false");
	if (first) {
		ql = json_quote(first, strlen(first), q, sizeof(q));
		EMIT(",\"first_id\":%.*s", (int)ql, q);
		ql = json_quote(last, strlen(last), q, sizeof(q));
		EMIT(",\"last_id\":%.*s", (int)ql, q);
	} else {
		EMIT(",\"first_id\":null,\"last_id\":null");
	}
	EMIT("}");
#undef EMIT
	return (long)off;
}

int verdict_pool_name(const struct verdict *v, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	const char *name = v->model ? v->model->name : NULL;
	size_t o = 5;
	int n;

	if (!name) {
		n = snprintf(out, size, "pool__passthrough");
		return n < 0 || (size_t)n >= size ? -1 : n;
	}
	/* HAProxy proxy names take letters, digits, '-', '_', '.' and ':'.
	 * The encoding is injective, so two models never share a pool: '_'
	 * doubles, any other byte outside that set becomes "_hh" (so a model
	 * named "_passthrough" gets "pool___passthrough", not the
	 * pass-through pool). */
	if (size < 6)
		return -1;
	memcpy(out, "pool_", 5);
	for (size_t i = 0; name[i]; i++) {
		unsigned char c = (unsigned char)name[i];

		if (isalnum(c) || c == '-' || c == '.' || c == ':') {
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)c;
		} else if (c == '_') {
			if (o + 2 >= size)
				return -1;
			out[o++] = '_';
			out[o++] = '_';
		} else {
			if (o + 3 >= size)
				return -1;
			out[o++] = '_';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return (int)o;
}

int verdict_attempt(const struct realms_config *cfg, struct vslice server,
                    struct vslice model, int64_t off, int64_t len, int64_t clen,
                    struct attempt *a)
{
	long q;
	int n;

	memset(a, 0, sizeof(*a));
	a->cred = config_cred_by_server(cfg, server.p, server.len);
	if (!a->cred) {
		a->error = "unknown server (configuration changed?)";
		return -1;
	}
	a->binding = cfg_channel_binding(a->cred->channel, model.p, model.len);
	if (!a->binding) {
		a->error = "channel does not serve this model";
		return -1;
	}
	n = snprintf(a->backend, sizeof(a->backend), "up_%s", a->cred->channel->name);
	if (n < 0 || (size_t)n >= sizeof(a->backend)) {
		a->error = "channel name too long";
		return -1;
	}
	if (!a->binding->rewrite || !a->binding->upstream)
		return 0;
	if (off < 0 || len < 2 || (clen >= 0 && clen < off + len)) {
		a->error = "model position unknown";
		return -1;
	}
	q = json_quote(a->binding->upstream, a->binding->upstream_len,
	               a->model_new, sizeof(a->model_new));
	if (q < 0) {
		a->error = "upstream model name too long";
		return -1;
	}
	a->rewrite = 1;
	a->model_new_len = (size_t)q;
	a->clen_new = clen >= 0 ? clen - len + q : -1;
	return 0;
}
