/*
 * Body inspection: what the prefix of a Messages API request body says about
 * its top-level "model", "stream", "max_tokens" and "metadata"."user_id"
 * (contract in realms/inspect.h). Pure: no I/O.
 *
 * One pass of the JSON scanner over the prefix. It checks every byte
 * (RFC 8259, UTF-8 validity aside) at any depth in linear time, and reports
 * only the root object's own keys and values, which is all inspection
 * needs: nested content (messages, tool schemas) is skipped, never given a
 * budget. There is no "too complex" any more: a body whose second "model"
 * sits after a deep tool schema is read to that second "model" like any
 * other, and refused as a duplicate.
 */
#include <string.h>

#include <realms/inspect.h>
#include <realms/json.h>

/* The root keys we look for. */
enum root_key {
	RK_OTHER = 0,
	RK_MODEL,
	RK_STREAM,
	RK_MAX_TOKENS,
	RK_METADATA,
};

static enum root_key root_key_of(const char *tok, size_t len)
{
	if (json_str_is(tok, len, "model"))
		return RK_MODEL;
	if (json_str_is(tok, len, "stream"))
		return RK_STREAM;
	if (json_str_is(tok, len, "max_tokens"))
		return RK_MAX_TOKENS;
	if (json_str_is(tok, len, "metadata"))
		return RK_METADATA;
	return RK_OTHER;
}

/* A root key: what it says of an earlier value of the same name is
 * forgotten, since the last of duplicated keys wins upstream. */
static void key_seen(struct inspect_result *res, enum root_key key)
{
	switch (key) {
	case RK_MODEL:
		res->model_state = INSPECT_KEY_ABSENT;
		res->model[0] = 0;
		res->model_len = 0;
		res->model_off = 0;
		res->model_tok_len = 0;
		res->model_too_long = 0;
		break;
	case RK_STREAM:
		res->stream_state = INSPECT_KEY_ABSENT;
		res->stream = 0;
		break;
	case RK_MAX_TOKENS:
		res->max_tokens_state = INSPECT_KEY_ABSENT;
		res->max_tokens = 0;
		break;
	case RK_METADATA:
		res->user_id[0] = 0;
		res->user_id_len = 0;
		break;
	case RK_OTHER:
		break;
	}
}

/* A root value starts: a container is of a known type at once, even if the
 * prefix cuts it (a scalar is not known until it ends). */
static void value_begins(struct inspect_result *res, enum root_key key, enum json_type t)
{
	if (t != JSON_T_OBJECT && t != JSON_T_ARRAY)
		return;
	if (key == RK_MODEL)
		res->model_state = INSPECT_KEY_WRONG_TYPE;
	else if (key == RK_STREAM)
		res->stream_state = INSPECT_KEY_WRONG_TYPE;
	else if (key == RK_MAX_TOKENS)
		res->max_tokens_state = INSPECT_KEY_WRONG_TYPE;
}

/* The members of the root's "metadata" object: the value token of its last
 * "user_id", or NULL when that one is not a string (it cancels an earlier
 * one, as it would upstream). */
struct meta {
	const char *uid;
	size_t uid_len;
};

static void meta_member(void *arg, const struct json_member *m)
{
	struct meta *md = arg;

	if (!json_str_is(m->key, m->key_len, "user_id"))
		return;
	md->uid = m->type == JSON_T_STRING ? m->val : NULL;
	md->uid_len = m->val_len;
}

/* The root's "metadata" object, whole in the prefix: its last "user_id"
 * counts if it is a clean string short enough. */
static void metadata_done(struct inspect_result *res, const char *obj, size_t len)
{
	struct meta md = { NULL, 0 };
	unsigned int fl;
	size_t n;

	if (json_each(obj, len, meta_member, &md) < 0 || !md.uid)
		return;
	n = json_unescape(md.uid + 1, md.uid_len - 2, res->user_id, INSPECT_USER_ID_MAX, &fl);
	if (n == 0 || n > INSPECT_USER_ID_MAX || fl) {
		res->user_id[0] = 0;
		return;
	}
	res->user_id[n] = 0;
	res->user_id_len = n;
}

/* A root value is whole: buf[ev->start, ev->end). */
static void value_done(struct inspect_result *res, enum root_key key, const char *buf,
                       const struct json_ev *ev)
{
	const char *tok = buf + ev->start;
	size_t len = (size_t)(ev->end - ev->start), n;
	unsigned int fl;

	switch (key) {
	case RK_MODEL:
		if (ev->type != JSON_T_STRING) {
			res->model_state = INSPECT_KEY_WRONG_TYPE;
			break;
		}
		/* A control character or a lone surrogate is no model name. */
		n = json_unescape(tok + 1, len - 2, res->model, INSPECT_MODEL_MAX, &fl);
		if (n > INSPECT_MODEL_MAX || fl) {
			res->model_state = INSPECT_KEY_WRONG_TYPE;
			res->model_too_long = n > INSPECT_MODEL_MAX;
			res->model[0] = 0;
			break;
		}
		res->model_state = INSPECT_KEY_PRESENT;
		res->model[n] = 0;
		res->model_len = n;
		res->model_off = (size_t)ev->start;
		res->model_tok_len = len;
		break;
	case RK_STREAM:
		if (ev->type == JSON_T_TRUE || ev->type == JSON_T_FALSE) {
			res->stream_state = INSPECT_KEY_PRESENT;
			res->stream = ev->type == JSON_T_TRUE;
		} else {
			res->stream_state = INSPECT_KEY_WRONG_TYPE;
		}
		break;
	case RK_MAX_TOKENS:
		if (ev->type == JSON_T_NUMBER && json_u64(tok, len, &res->max_tokens) == 0) {
			res->max_tokens_state = INSPECT_KEY_PRESENT;
		} else {
			res->max_tokens_state = INSPECT_KEY_WRONG_TYPE;
			res->max_tokens = 0;
		}
		break;
	case RK_METADATA:
		if (ev->type == JSON_T_OBJECT)
			metadata_done(res, tok, len);
		break;
	case RK_OTHER:
		break;
	}
}

/* Whether a top-level key token (quotes included) is a plain name of the
 * Messages API's kind: lowercase snake_case, no escape. Providers that
 * fold case or Unicode when they map keys (Go's encoding/json does both)
 * would read "Model" or "mode\u017f" as another spelling of a key; with
 * such keys refused, every upstream reads the same keys the agent does. */
static int key_plain_name(const char *tok, size_t len)
{
	if (len < 3)
		return 0;
	for (size_t i = 1; i + 1 < len; i++)
		if (!((tok[i] >= 'a' && tok[i] <= 'z') || (tok[i] >= '0' && tok[i] <= '9') ||
		      tok[i] == '_'))
			return 0;
	return 1;
}

/* Besides what the header says: results are cleared for every status but
 * OK and DUPLICATE_KEY (where the last occurrence of a key is reported). */
enum inspect_status inspect_body(const char *buf, size_t len, size_t body_len,
                                 struct inspect_result *res)
{
	enum root_key key = RK_OTHER;
	struct json_scanner s;
	struct json_keys keys;
	struct json_ev ev;
	const char *p, *end;
	int whole, r, not_object = 0, odd_key = 0;
	size_t i, nkeys = 0;

	memset(res, 0, sizeof(*res));
	if (len > body_len)
		len = body_len;
	if (body_len == 0)
		return res->status = INSPECT_EMPTY;
	whole = len == body_len;

	/* A cut body that does not start like an object is not one, whatever
	 * follows; a whole one is checked first, so that garbage is called
	 * invalid rather than "not an object". */
	for (i = 0; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
			break;
	if (i < len && buf[i] != '{' && !whole)
		return res->status = INSPECT_NOT_OBJECT;

	json_scan_init(&s, 0);
	json_keys_init(&keys);
	p = buf;
	end = buf + len;
	while ((r = json_scan(&s, &p, end, &ev)) > 0) {
		switch (r) {
		case JSON_EV_ROOT:
			not_object = ev.type != JSON_T_OBJECT;
			break;
		case JSON_EV_KEY:
			nkeys++;
			if (!key_plain_name(buf + ev.start, (size_t)(ev.end - ev.start)))
				odd_key = 1;
			if (json_keys_add(&keys, buf + ev.start, (size_t)(ev.end - ev.start)) < 0) {
				r = -1;
				goto done;
			}
			key = root_key_of(buf + ev.start, (size_t)(ev.end - ev.start));
			key_seen(res, key);
			break;
		case JSON_EV_BEGIN:
			if (!ev.key)
				value_begins(res, key, ev.type);
			break;
		case JSON_EV_VALUE:
			value_done(res, key, buf, &ev);
			break;
		default:
			break;
		}
	}
done:
	if (r < 0 || (whole && json_scan_status(&s) != JSON_COMPLETE)) {
		memset(res, 0, sizeof(*res));
		res->status = INSPECT_INVALID;
	} else if (not_object) {
		memset(res, 0, sizeof(*res));
		res->complete = whole;
		res->status = INSPECT_NOT_OBJECT;
	} else {
		res->complete = whole;
		res->status = json_keys_dup(&keys) ? INSPECT_DUPLICATE_KEY : INSPECT_OK;
		res->n_keys = nkeys;
		res->odd_key = odd_key;
	}
	json_keys_release(&keys);
	json_scan_release(&s);
	return res->status;
}

const char *inspect_status_str(enum inspect_status st)
{
	switch (st) {
	case INSPECT_OK:            return "ok";
	case INSPECT_EMPTY:         return "empty";
	case INSPECT_NOT_OBJECT:    return "not_object";
	case INSPECT_INVALID:       return "invalid";
	case INSPECT_DUPLICATE_KEY: return "duplicate_key";
	}
	return "unknown";
}
