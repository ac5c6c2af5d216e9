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
#include <realms/stick.h>
#include <realms/tried.h>
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
	} else if (slice_is(in->path, "/api/usage")) {
		r = ROUTE_USAGE;
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

size_t verdict_beta(struct vslice in, char *out, size_t size)
{
	const char *p = in.p, *end = in.len ? in.p + in.len : in.p;
	size_t o = 0, kept = 0;

	if (size)
		out[0] = '\0';
	while (in.len && p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		struct vslice v = { p, (size_t)((comma ? comma : end) - p) };
		int ok = 1;

		p = comma ? comma + 1 : end;
		v = trim(v);
		if (!v.len || v.len > VERDICT_BETA_NAME_MAX || kept == VERDICT_BETA_MAX)
			continue;
		for (size_t i = 0; i < v.len && ok; i++)
			ok = isalnum((unsigned char)v.p[i]) || strchr("._-", v.p[i]);
		if (!ok || (v.len >= 6 && strncasecmp(v.p, "oauth-", 6) == 0))
			continue;
		/* A duplicate: already in out, as a whole value. */
		for (const char *q = out; ok && q < out + o; ) {
			const char *qe = memchr(q, ',', (size_t)(out + o - q));
			size_t ql = (size_t)((qe ? qe : out + o) - q);

			if (ql == v.len && !memcmp(q, v.p, v.len))
				ok = 0;
			q = qe ? qe + 1 : out + o;
		}
		if (!ok || o + (o ? 1 : 0) + v.len + 1 > size)
			continue;
		if (o)
			out[o++] = ',';
		memcpy(out + o, v.p, v.len);
		o += v.len;
		out[o] = '\0';
		kept++;
	}
	return o;
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
	if (r->odd_key) {
		refuse(v, 400, "invalid_request_error",
		       "request body has a top-level key that is not a plain lowercase name "
		       "(a-z 0-9 _, no escape)");
		return -1;
	}
	if (r->n_keys > INSPECT_KEYS_MAX) {
		refuse(v, 400, "invalid_request_error",
		       "request body has more than %d top-level keys", INSPECT_KEYS_MAX);
		return -1;
	}
	if (in->body_size_known && in->max_body && in->body_size > in->max_body) {
		refuse(v, 413, "request_too_large",
		       "request body is %llu bytes; this gateway accepts at most %llu",
		       (unsigned long long)in->body_size, (unsigned long long)in->max_body);
		return -1;
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

int verdict_cands_build(const struct realms_config *cfg, const struct cfg_model *m,
                        const char *name, size_t name_len, int group,
                        struct verdict_cands *out)
{
	size_t cap = cfg->n_creds ? cfg->n_creds : 1;
	size_t nch = m ? m->n_routes : cfg->n_wildcard;

	memset(out, 0, sizeof(*out));
	/* One block for the three arrays: one allocation per request. The
	 * pointers come first, so every array is aligned. */
	out->cred = malloc(cap * (sizeof(*out->cred) + sizeof(*out->bind) + sizeof(*out->c)));
	if (!out->cred)
		return -1;
	out->bind = (const struct cfg_binding **)(out->cred + cap);
	out->c = (struct sched_cand *)(out->bind + cap);

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
			out->bound++;
			if (!cfg_channel_in_group(ch, group))
				continue;
			out->c[out->n].cred_id = cred->id;
			out->c[out->n].priority = ch->priority;
			out->c[out->n].weight = ch->weight > 0 ? (uint32_t)ch->weight : 0;
			out->cred[out->n] = cred;
			out->bind[out->n] = bind;
			out->n++;
		}
	}
	return 0;
}

void verdict_cands_free(struct verdict_cands *vc)
{
	free(vc->cred);
	memset(vc, 0, sizeof(*vc));
}

/* Whether a name begins with a configured model name: a public one or a
 * channel's upstream name for one. */
static int passthrough_collides(const struct realms_config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n_models; i++)
		if (len >= cfg->models[i].name_len &&
		    !memcmp(name, cfg->models[i].name, cfg->models[i].name_len))
			return 1;
	for (size_t c = 0; c < cfg->n_channels; c++)
		for (size_t b = 0; b < cfg->channels[c].n_bindings; b++) {
			const struct cfg_binding *bd = &cfg->channels[c].bindings[b];

			if (bd->upstream && len >= bd->upstream_len &&
			    !memcmp(name, bd->upstream, bd->upstream_len))
				return 1;
		}
	return 0;
}

/* The catalogue model a client's name refers to for serving: m (may be
 * NULL: passed through). Returns 0, or -1 with the refusal set in v. */
static int resolve_model(const struct realms_config *cfg, const char *name, size_t len,
                         const struct cfg_model **m, struct verdict *v)
{
	*m = config_model(cfg, name, len);
	if (*m && (*m)->enabled)
		return 0;
	if (!*m && !cfg_model_name_ok(name, len)) {
		/* No configured model can have such a name, and a passed-
		 * through one must survive HTTP headers and Redis keys as is. */
		refuse(v, 400, "invalid_request_error",
		       "model: not a valid model name (1 to %d of A-Z a-z 0-9 . _ - @ / + [ ])",
		       INSPECT_MODEL_MAX);
		return -1;
	}
	if (!*m && passthrough_collides(cfg, name, len)) {
		/* A configured model under another spelling (its channel's name
		 * for it, a dated variant): passing it through would serve a
		 * disabled model, or one outside the token's group, on a "*"
		 * channel. Clients use the public name. */
		refuse(v, 404, "not_found_error", "model: %.*s", (int)len, name);
		return -1;
	}
	if (*m || !cfg->agent.allow_unknown_models || !cfg->n_wildcard) {
		/* Unknown or disabled: strict by default. A disabled model is
		 * never passed through, whatever the wildcard says. */
		*m = NULL;
		refuse(v, 404, "not_found_error", "model: %.*s", (int)len, name);
		return -1;
	}
	return 0;
}

/* Whether a name would be served at all (an enabled model, or a
 * passed-through one): a token's own list refuses only those, so an
 * unknown name stays a 404 whatever the token. */
static int servable(const struct realms_config *cfg, const char *name, size_t len)
{
	const struct cfg_model *m = config_model(cfg, name, len);

	if (m)
		return m->enabled;
	return cfg->agent.allow_unknown_models && cfg->n_wildcard && cfg_model_name_ok(name, len);
}

int verdict_token_allows(const char *models, const char *name, size_t len)
{
	const char *p = models;

	if (!models || !*models)
		return 1;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);

		if (n == len && !memcmp(p, name, len))
			return 1;
		p += n + (c != NULL);
	}
	return 0;
}

/* The rest of an attempt on a->cred through a->binding: its backend, and
 * the body's model token at [off, off + len) rewritten when the channel
 * names the model otherwise (clen: the body's length, -1 when chunked). */
static int attempt_fill(struct attempt *a, int64_t off, int64_t len, int64_t clen)
{
	long q;
	int n;

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

/* Through the relay, retried within the request, or straight to the
 * channel (docs/failover.md): only a body of known length within
 * failover.max_body, with attempts to spare, pays for a retry copy. */
static void route(const struct realms_config *cfg, const struct verdict_in *in,
                  struct verdict *v)
{
	struct attempt *a = &v->first;

	v->retry = cfg->failover.attempts > 1 && cfg->failover.max_body > 0 &&
	           in->body_size_known && in->body_size <= (uint64_t)cfg->failover.max_body;
	if (v->retry)
		return;
	memset(a, 0, sizeof(*a));
	a->cred = v->cred;
	a->binding = v->binding;
	if (attempt_fill(a, (int64_t)v->insp.model_off, (int64_t)v->insp.model_tok_len,
	                 in->body_size_known ? (int64_t)in->body_size : -1) < 0)
		refuse(v, 500, "api_error", "the gateway could not prepare the upstream "
		       "request: %s", a->error);
}

/* Stickiness through failures (stick.h): given the scheduler's pick for a
 * session, the credential this session moved to when it is still a
 * candidate, usable, not avoided, and in the pick's tier (tiers stay the
 * operator's order: a session moved to a lower tier goes back up when the
 * higher one recovers). Then remembers where the session is: nothing when
 * on its first choice (its rendezvous winner with every candidate
 * usable), else the credential it is served by. */
static int session_pick(const struct verdict_cands *vc, const char *sess, size_t slen,
                        const struct sched_env *env, int pick)
{
	const struct sched_env all = { 0 };
	char srv[STICK_SERVER_MAX + 1];
	const struct cfg_cred *cr;
	int home, chosen = pick;
	size_t sl;

	if (!env->stick || !slen || pick < 0)
		return pick;
	home = sched_pick(vc->c, vc->n, sess, slen, &all);
	sl = stick_get(sess, slen, env->now_ms, srv, sizeof(srv));
	for (size_t i = 0; sl && i < vc->n; i++) {
		if (vc->cred[i]->server_len != sl || memcmp(vc->cred[i]->server, srv, sl))
			continue;
		if (vc->c[i].priority == vc->c[pick].priority && sched_takes(&vc->c[i], env))
			chosen = (int)i;
		break;
	}
	cr = vc->cred[chosen];
	if (chosen == home) {
		if (sl)
			stick_del(sess, slen);
	} else {
		stick_set(sess, slen, cr->server, cr->server_len, env->now_ms);
	}
	return chosen;
}

static void choose(const struct realms_config *cfg, const struct verdict_in *in,
                   int group, const struct sched_env *env, struct verdict *v)
{
	const struct inspect_result *r = &v->insp;
	const struct cfg_model *m;
	struct verdict_cands vc;
	int pick;

	if (resolve_model(cfg, r->model, r->model_len, &m, v) < 0)
		return;
	v->model = m;
	if (verdict_cands_build(cfg, m, r->model, r->model_len, group, &vc) < 0) {
		refuse(v, 503, "api_error", "the gateway is out of memory; retry shortly");
		return;
	}
	if (vc.bound == 0) {
		/* Enabled, but nothing serves it: as unknown to the client. */
		refuse(v, 404, "not_found_error", "model: %s", r->model);
	} else if (vc.n == 0) {
		refuse(v, 403, "permission_error",
		       "model %s is not available to this API token", r->model);
	} else {
		/* Session: the Claude Code header, else metadata.user_id. */
		if (!session_copy(in->session.p, in->session.len, v->session, sizeof(v->session)) &&
		    r->user_id_len)
			verdict_session_from_user_id(r->user_id, r->user_id_len,
			                             v->session, sizeof(v->session));
		pick = sched_pick(vc.c, vc.n, v->session, strlen(v->session), env);
		pick = session_pick(&vc, v->session, strlen(v->session), env, pick);
		if (pick < 0) {
			refuse(v, 503, "overloaded_error",
			       "no upstream is available for model %s right now; "
			       "retry shortly", r->model);
		} else {
			v->cred = vc.cred[pick];
			v->binding = vc.bind[pick];
			route(cfg, in, v);
		}
	}
	verdict_cands_free(&vc);
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
	case TOK_DAMAGED:
		refuse(v, 503, "api_error", "this API token's record cannot be read; "
		       "ask the gateway's operator");
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
	if (v->route == ROUTE_MODELS || v->route == ROUTE_HELLO || v->route == ROUTE_USAGE)
		return;
	if (in->beta_count > 1) {
		refuse(v, 400, "invalid_request_error",
		       "anthropic-beta: send it once, as a comma-separated list");
		return;
	}
	verdict_beta(in->beta, v->beta, sizeof(v->beta));
	if (check_body(in, v) < 0)
		return;
	if (!verdict_token_allows(tok->models, v->insp.model, v->insp.model_len) &&
	    servable(cfg, v->insp.model, v->insp.model_len)) {
		/* Not 404: the model exists; this token may not use it. */
		refuse(v, 403, "permission_error",
		       "model %s is not enabled for this API token (ask for it to be added "
		       "to the token's models)", v->insp.model);
		return;
	}
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

long verdict_models_body(const struct realms_config *cfg, int group, const char *models,
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

		if (!m->enabled || !model_open_to(m, group) ||
		    !verdict_token_allows(models, m->name, m->name_len))
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

/* Availability for a retry: what sched's caller says, minus what this
 * request already tried. */
struct retry_env {
	const struct sched_env *env;
	const struct tried *tried;
};

static int retry_available(int cred_id, void *arg)
{
	const struct retry_env *re = arg;

	if (tried_has(re->tried, cred_id))
		return 0;
	return !re->env->available || re->env->available(cred_id, re->env->avail_arg);
}

/* The candidate for this attempt: the verdict's own choice for a first
 * attempt (it already claimed a half-open probe), else the scheduler's
 * pick among what this request has not tried, in the usual order:
 * avoided credentials last, tiers, then weights or the session's
 * stickiness, so a session's retry goes to its own second choice (or to
 * where it moved before) and stays there for its next turns. When
 * everything was tried, what is available again (an attempt beyond the
 * number of credentials). -1: none. */
static int attempt_pick(const struct realms_config *cfg, const struct attempt_in *in,
                        const struct verdict_cands *vc, const struct sched_env *env)
{
	struct retry_env re = { env, in->tried };
	struct sched_env renv = *env;
	int pick;

	if (in->tried->n == 0) {
		const struct cfg_cred *p = config_cred_by_server(cfg, in->primary.p, in->primary.len);

		for (size_t i = 0; p && i < vc->n; i++)
			if (vc->cred[i] == p)
				return (int)i;
	}
	renv.available = retry_available;
	renv.avail_arg = &re;
	pick = sched_pick(vc->c, vc->n, in->session.p, in->session.len, &renv);
	if (pick >= 0)
		return session_pick(vc, in->session.p, in->session.len, &renv, pick);
	pick = sched_pick(vc->c, vc->n, in->session.p, in->session.len, env);
	return session_pick(vc, in->session.p, in->session.len, env, pick);
}

int verdict_attempt(const struct realms_config *cfg, const struct attempt_in *in,
                    const struct sched_env *env, struct attempt *a)
{
	const struct cfg_model *m;
	struct verdict_cands vc;
	struct verdict v;
	int group, pick;

	memset(a, 0, sizeof(*a));
	memset(&v, 0, sizeof(v));
	/* Everything is checked again on every attempt: the configuration
	 * may have changed since the verdict (a disabled model, credential
	 * or channel is never used), and the group decides which
	 * credentials a retry may move to. */
	if (resolve_model(cfg, in->model.p, in->model.len, &m, &v) < 0) {
		a->error = v.status == 400 ? "invalid model name" : "model not served";
		return -1;
	}
	group = config_group_index(cfg, in->group.p, in->group.len);
	if (group < 0) {
		a->error = "unknown group";
		return -1;
	}
	if (verdict_cands_build(cfg, m, in->model.p, in->model.len, group, &vc) < 0) {
		a->error = "out of memory";
		return -1;
	}
	pick = attempt_pick(cfg, in, &vc, env);
	if (pick < 0) {
		verdict_cands_free(&vc);
		a->error = "no credential of the token's group is available";
		return -1;
	}
	a->cred = vc.cred[pick];
	a->binding = vc.bind[pick];
	verdict_cands_free(&vc);
	return attempt_fill(a, in->off, in->len, in->clen);
}
