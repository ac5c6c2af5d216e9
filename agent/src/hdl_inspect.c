/*
 * "realms-inspect": runs body inspection on the prefix HAProxy sent and
 * returns what it found as transaction variables. Pure: no I/O.
 */
#include <string.h>

#include <realms/handlers.h>
#include <realms/inspect.h>
#include <realms/spoa.h>
#include <realms/spop.h>

static const char *key_state_str(enum inspect_key_state st)
{
	switch (st) {
	case INSPECT_KEY_PRESENT:    return "present";
	case INSPECT_KEY_WRONG_TYPE: return "wrong_type";
	default:                     return "absent";
	}
}

/* The body argument may come as binary (req.body) or string; its full
 * length as any integer type. */
static int arg_bytes(const struct spop_msg *msg, const char *name,
                     const char **p, size_t *len)
{
	const struct spop_kv *kv = spop_msg_arg(msg, name);

	if (!kv || (kv->value.type != SPOP_DATA_T_BIN && kv->value.type != SPOP_DATA_T_STR))
		return -1;
	*p = kv->value.u.str.ptr;
	*len = kv->value.u.str.len;
	return 0;
}

static int arg_uint(const struct spop_msg *msg, const char *name, uint64_t *v)
{
	const struct spop_kv *kv = spop_msg_arg(msg, name);

	if (!kv)
		return -1;
	switch (kv->value.type) {
	case SPOP_DATA_T_INT32:  if (kv->value.u.s32 < 0) return -1; *v = (uint64_t)kv->value.u.s32; return 0;
	case SPOP_DATA_T_UINT32: *v = kv->value.u.u32; return 0;
	case SPOP_DATA_T_INT64:  if (kv->value.u.s64 < 0) return -1; *v = (uint64_t)kv->value.u.s64; return 0;
	case SPOP_DATA_T_UINT64: *v = kv->value.u.u64; return 0;
	default: return -1;
	}
}

static enum spoa_hdl_ret hdl_inspect(struct spoa_req *req, const struct spop_msg *msg)
{
	struct inspect_result res;
	const char *body = "";
	size_t len = 0;
	uint64_t body_len;

	if (arg_bytes(msg, "body", &body, &len) < 0)
		len = 0;   /* no body argument: an empty prefix */
	if (arg_uint(msg, "body_len", &body_len) < 0)
		body_len = len;

	inspect_body(body, len, (size_t)body_len, &res);

	spoa_set_str(req, SPOP_SCOPE_TXN, "body_status",
	             inspect_status_str(res.status), strlen(inspect_status_str(res.status)));
	spoa_set_str(req, SPOP_SCOPE_TXN, "model_state",
	             key_state_str(res.model_state), strlen(key_state_str(res.model_state)));
	if (res.model_state == INSPECT_KEY_PRESENT) {
		spoa_set_str(req, SPOP_SCOPE_TXN, "model", res.model, res.model_len);
		spoa_set_int(req, SPOP_SCOPE_TXN, "model_off", (int64_t)res.model_off);
		spoa_set_int(req, SPOP_SCOPE_TXN, "model_len", (int64_t)res.model_tok_len);
	}
	spoa_set_str(req, SPOP_SCOPE_TXN, "stream_state",
	             key_state_str(res.stream_state), strlen(key_state_str(res.stream_state)));
	if (res.stream_state == INSPECT_KEY_PRESENT)
		spoa_set_int(req, SPOP_SCOPE_TXN, "stream", res.stream);
	return SPOA_HDL_DONE;
}

int hdl_inspect_register(void)
{
	return spoa_register("realms-inspect", hdl_inspect);
}
