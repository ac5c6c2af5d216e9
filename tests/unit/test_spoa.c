/*
 * The agent's SPOP state machine (spoa.c), driven without sockets: bytes in
 * through the input buffer, frames out of the output buffer.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <realms/log.h>
#include <realms/spoa.h>
#include <realms/spop.h>

/* ---- test handlers -------------------------------------------------- */

static struct spoa_req *held[8];
static int nb_held;
static int want_write_calls;

static enum spoa_hdl_ret h_echo(struct spoa_req *req, const struct spop_msg *msg)
{
	const struct spop_kv *kv = spop_msg_arg(msg, "v");

	if (kv && kv->value.type == SPOP_DATA_T_STR)
		spoa_set_str(req, SPOP_SCOPE_TXN, "echo", kv->value.u.str.ptr, kv->value.u.str.len);
	spoa_set_int(req, SPOP_SCOPE_SESS, "n", (int64_t)msg->nb_args);
	spoa_unset_var(req, SPOP_SCOPE_REQ, "gone");
	return SPOA_HDL_DONE;
}

static enum spoa_hdl_ret h_async(struct spoa_req *req, const struct spop_msg *msg)
{
	spoa_req_hold(req);
	held[nb_held++] = req;
	return SPOA_HDL_PENDING;
}

static enum spoa_hdl_ret h_big(struct spoa_req *req, const struct spop_msg *msg)
{
	static char blob[2048];

	memset(blob, 'x', sizeof(blob));
	/* Does not fit in a 1 KB frame: dropped, the ACK still goes out. */
	assert_int_equal(spoa_set_str(req, SPOP_SCOPE_TXN, "big", blob, sizeof(blob)), -1);
	assert_int_equal(spoa_set_int(req, SPOP_SCOPE_TXN, "small", 1), 0);
	return SPOA_HDL_DONE;
}

/* Holds and releases within the call: that is done. */
static enum spoa_hdl_ret h_holdrel(struct spoa_req *req, const struct spop_msg *msg)
{
	spoa_req_hold(req);
	spoa_set_int(req, SPOP_SCOPE_TXN, "holdrel", 1);
	spoa_req_release(req);
	return SPOA_HDL_DONE;
}

/* Handlers whose answer their holds contradict: bugs the dispatcher must
 * stop (the first is left holding nothing, the second holds forever). */
static enum spoa_hdl_ret h_lie_pending(struct spoa_req *req, const struct spop_msg *msg)
{
	return SPOA_HDL_PENDING;
}

static enum spoa_hdl_ret h_lie_done(struct spoa_req *req, const struct spop_msg *msg)
{
	spoa_req_hold(req);
	held[nb_held++] = req;
	return SPOA_HDL_DONE;
}

static void on_want_write(struct spoa_conn *c)
{
	want_write_calls++;
}

static const struct spoa_conn_ops ops = { .want_write = on_want_write };

static int setup_registry(void **state)
{
	log_init("test", 0, LOG_LVL_ERR);
	spoa_register("echo", h_echo);
	spoa_register("async", h_async);
	spoa_register("big", h_big);
	spoa_register("holdrel", h_holdrel);
	spoa_register("lie-pending", h_lie_pending);
	spoa_register("lie-done", h_lie_done);
	return 0;
}

/* ---- helpers -------------------------------------------------------- */

static void feed(struct spoa_conn *c, const uint8_t *p, size_t len)
{
	while (len) {
		size_t room;
		uint8_t *dst = spoa_conn_rspace(c, &room);

		assert_non_null(dst);
		if (room > len)
			room = len;
		memcpy(dst, p, room);
		spoa_conn_rcommit(c, room);
		p += room;
		len -= room;
	}
}

/* Takes the next frame out of the output buffer. Returns 0 if none. */
static int next_out(struct spoa_conn *c, struct spop_frame *f, uint8_t *copy, size_t size)
{
	size_t len;
	const uint8_t *d = spoa_conn_wdata(c, &len);
	enum spop_err err;
	ssize_t n;

	if (len == 0)
		return 0;
	assert_true(len <= size);
	memcpy(copy, d, len);
	n = spop_frame_parse(copy, len, 1u << 20, f, &err);
	assert_true(n > 0);
	spoa_conn_wconsume(c, (size_t)n);
	return 1;
}

static struct spoa_conn *hello(uint32_t our_max, uint32_t theirs, int hc)
{
	struct spoa_conn *c = spoa_conn_new(our_max, &ops, NULL, NULL, 1);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	ssize_t n = spop_build_haproxy_hello(buf, sizeof(buf), theirs, hc);

	assert_true(n > 0);
	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), hc ? SPOA_IO_CLOSE : SPOA_IO_CONTINUE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_HELLO);
	return c;
}

static ssize_t notify(uint8_t *buf, size_t size, uint64_t sid, uint64_t fid,
                      const char *msg, const char *v, uint32_t flags)
{
	struct spop_wr w;
	struct spop_data d = spop_str(v, strlen(v));

	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_NOTIFY, flags, sid, fid);
	spop_put_msg(&w, msg, 1);
	spop_put_kv(&w, "v", &d);
	return spop_frame_end(&w);
}

static uint32_t disconnect_status(const struct spop_frame *f)
{
	uint32_t st = 1234;
	struct spop_slice m;

	assert_int_equal(f->type, SPOP_FRM_T_AGENT_DISCON);
	assert_int_equal(spop_disconnect_parse(f->payload, f->payload_len, &st, &m), 0);
	return st;
}

/* ---- tests ---------------------------------------------------------- */

static void test_hello_negotiates_min_frame(void **state)
{
	struct spoa_conn *c = spoa_conn_new(65536, &ops, NULL, NULL, 1);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	const uint8_t *p, *end;
	struct spop_kv kv;
	int saw = 0;
	ssize_t n = spop_build_haproxy_hello(buf, sizeof(buf), 16380, 0);

	/* Byte by byte: nothing happens before the last byte. */
	for (ssize_t i = 0; i < n; i++) {
		feed(c, buf + i, 1);
		assert_int_equal(spoa_conn_process(c), SPOA_IO_CONTINUE);
		assert_int_equal(next_out(c, &f, out, sizeof(out)), i == n - 1);
	}
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_HELLO);
	assert_true(f.flags & SPOP_FRM_FL_FIN);
	assert_int_equal(c->max_frame, 16380);
	p = f.payload;
	end = f.payload + f.payload_len;
	while (spop_kv_next(&p, end, &kv) == 1) {
		if (kv.name.len == 14 && !memcmp(kv.name.ptr, "max-frame-size", 14)) {
			assert_int_equal(kv.value.u.u32, 16380);
			saw |= 1;
		} else if (kv.name.len == 7 && !memcmp(kv.name.ptr, "version", 7)) {
			assert_memory_equal(kv.value.u.str.ptr, "2.0", 3);
			saw |= 2;
		} else if (kv.name.len == 12 && !memcmp(kv.name.ptr, "capabilities", 12)) {
			assert_int_equal(kv.value.u.str.len, 10);
			assert_memory_equal(kv.value.u.str.ptr, "pipelining", 10);
			saw |= 4;
		}
	}
	assert_int_equal(saw, 7);
	assert_int_equal(c->state, SPOA_ST_READY);
	spoa_conn_close(c);
}

static void test_healthcheck_closes(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 1);

	assert_int_equal(c->state, SPOA_ST_CLOSING);
	assert_true(c->flags & SPOA_FL_HEALTHCHK);
	spoa_conn_close(c);
}

static void test_hello_errors(void **state)
{
	struct spoa_conn *c = spoa_conn_new(65536, &ops, NULL, NULL, 1);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	ssize_t n = spop_build_haproxy_hello(buf, sizeof(buf), 255, 0);

	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_BAD_FRAME_SIZE);
	spoa_conn_close(c);

	/* A HELLO without FIN: fragmentation is not supported. */
	c = spoa_conn_new(65536, &ops, NULL, NULL, 1);
	n = spop_build_haproxy_hello(buf, sizeof(buf), 16380, 0);
	buf[8] &= (uint8_t)~SPOP_FRM_FL_FIN;   /* flags' last byte */
	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_FRAG_NOT_SUPP);
	spoa_conn_close(c);
}

static void test_notify_ack(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	struct spop_action a;
	const uint8_t *p, *end;
	ssize_t n = notify(buf, sizeof(buf), 7, 3, "echo", "hello", SPOP_FRM_FL_FIN);

	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CONTINUE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_ACK);
	assert_int_equal(f.stream_id, 7);
	assert_int_equal(f.frame_id, 3);
	p = f.payload;
	end = p + f.payload_len;
	assert_int_equal(spop_action_next(&p, end, &a), 1);
	assert_int_equal(a.type, SPOP_ACT_T_SET_VAR);
	assert_int_equal(a.scope, SPOP_SCOPE_TXN);
	assert_int_equal(a.name.len, 4);
	assert_memory_equal(a.name.ptr, "echo", 4);
	assert_int_equal(a.value.u.str.len, 5);
	assert_memory_equal(a.value.u.str.ptr, "hello", 5);
	assert_int_equal(spop_action_next(&p, end, &a), 1);
	assert_int_equal(a.scope, SPOP_SCOPE_SESS);
	assert_int_equal(a.value.u.s64, 1);
	assert_int_equal(spop_action_next(&p, end, &a), 1);
	assert_int_equal(a.type, SPOP_ACT_T_UNSET_VAR);
	assert_int_equal(a.scope, SPOP_SCOPE_REQ);
	assert_int_equal(spop_action_next(&p, end, &a), 0);
	assert_int_equal(c->inflight, 0);

	/* An unknown message gets an empty ACK. */
	n = notify(buf, sizeof(buf), 8, 1, "nobody", "x", SPOP_FRM_FL_FIN);
	feed(c, buf, (size_t)n);
	spoa_conn_process(c);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_ACK);
	assert_int_equal(f.payload_len, 0);
	spoa_conn_close(c);
}

/* Pipelining: three NOTIFYs in flight, answered in reverse order. */
static void test_pipelining_any_order(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	uint8_t buf[1536], out[512];
	struct spop_frame f;
	size_t off = 0;

	nb_held = 0;
	want_write_calls = 0;
	for (uint64_t s = 1; s <= 3; s++)
		off += (size_t)notify(buf + off, sizeof(buf) - off, s, s * 10, "async", "v", SPOP_FRM_FL_FIN);
	feed(c, buf, off);   /* all three in one read */
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CONTINUE);
	assert_int_equal(nb_held, 3);
	assert_int_equal(c->inflight, 3);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 0);

	for (int i = 2; i >= 0; i--) {
		spoa_set_int(held[i], SPOP_SCOPE_TXN, "i", i);
		spoa_req_release(held[i]);
		assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
		assert_int_equal(f.stream_id, (uint64_t)i + 1);
		assert_int_equal(f.frame_id, ((uint64_t)i + 1) * 10);
	}
	assert_int_equal(want_write_calls, 3);
	assert_int_equal(c->inflight, 0);
	spoa_conn_close(c);
}

/* A connection closed while a request is held: the late release frees all
 * without writing (ASan checks the memory). */
static void test_release_after_close(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	uint8_t buf[512];
	ssize_t n;

	nb_held = 0;
	want_write_calls = 0;
	n = notify(buf, sizeof(buf), 1, 1, "async", "v", SPOP_FRM_FL_FIN);
	feed(c, buf, (size_t)n);
	spoa_conn_process(c);
	assert_int_equal(nb_held, 1);
	spoa_conn_close(c);
	spoa_set_int(held[0], SPOP_SCOPE_TXN, "late", 1);
	spoa_req_release(held[0]);
	assert_int_equal(want_write_calls, 0);
}

static void test_fragmented_notify(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	ssize_t n = notify(buf, sizeof(buf), 1, 1, "echo", "v", 0 /* no FIN */);

	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_FRAG_NOT_SUPP);
	spoa_conn_close(c);
}

static void test_too_big(void **state)
{
	struct spoa_conn *c = hello(65536, 1024, 0);
	uint8_t len[4] = { 0, 0, 0x04, 0x01 };   /* 1025 > 1024 negotiated */
	uint8_t out[512];
	struct spop_frame f;

	feed(c, len, 4);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_TOO_BIG);
	assert_false(spoa_conn_can_read(c));
	spoa_conn_close(c);

	/* 4 GB before HELLO. */
	c = spoa_conn_new(65536, &ops, NULL, NULL, 1);
	memset(len, 0xff, 4);
	feed(c, len, 4);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_TOO_BIG);
	spoa_conn_close(c);
}

static void test_ack_overflow_keeps_others(void **state)
{
	struct spoa_conn *c = hello(65536, 1024, 0);
	uint8_t buf[512], out[1100];
	struct spop_frame f;
	struct spop_action a;
	const uint8_t *p;
	ssize_t n = notify(buf, sizeof(buf), 1, 1, "big", "v", SPOP_FRM_FL_FIN);

	feed(c, buf, (size_t)n);
	spoa_conn_process(c);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	p = f.payload;
	assert_int_equal(spop_action_next(&p, f.payload + f.payload_len, &a), 1);
	assert_int_equal(a.name.len, 5);
	assert_memory_equal(a.name.ptr, "small", 5);
	spoa_conn_close(c);
}

static void test_haproxy_disconnect(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	ssize_t n = spop_build_haproxy_disconnect(buf, sizeof(buf), 0, "bye");

	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_NONE);
	spoa_conn_close(c);
}

static void test_drain(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	ssize_t n;

	nb_held = 0;
	n = notify(buf, sizeof(buf), 1, 1, "async", "v", SPOP_FRM_FL_FIN);
	feed(c, buf, (size_t)n);
	spoa_conn_process(c);
	/* Draining waits for the frame in flight... */
	assert_int_equal(spoa_conn_drain(c), SPOA_IO_CONTINUE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 0);
	spoa_req_release(held[0]);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_ACK);
	/* ...then disconnects normally. */
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_NONE);
	spoa_conn_close(c);
}

static void test_malformed_notify(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	/* NOTIFY, FIN, sid 1, fid 1, a message name claiming 200 bytes. */
	uint8_t buf[] = { 0, 0, 0, 9, 3, 0, 0, 0, 1, 1, 1, 0xc8, 'x' };
	uint8_t out[512];
	struct spop_frame f;

	feed(c, buf, sizeof(buf));
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CLOSE);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(disconnect_status(&f), SPOP_ERR_INVALID);
	assert_int_equal(c->inflight, 0);
	spoa_conn_close(c);
}

/* One NOTIFY, three messages: one held and released within its call, one
 * pending, one done. A single ACK leaves, once the pending one is
 * released, with the actions of all three. */
static void test_notify_three_handlers_one_ack(void **state)
{
	struct spoa_conn *c = hello(65536, 16380, 0);
	static const char *const names[] = { "holdrel", "async", "echo" };
	struct spop_data d = spop_str("three", 5);
	uint8_t buf[512], out[512];
	struct spop_frame f;
	struct spop_action a;
	const uint8_t *p, *end;
	struct spop_wr w;
	ssize_t n;

	nb_held = 0;
	want_write_calls = 0;
	spop_wr_init(&w, buf, sizeof(buf));
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_NOTIFY, SPOP_FRM_FL_FIN, 5, 1);
	for (size_t i = 0; i < 3; i++) {
		spop_put_msg(&w, names[i], 1);
		spop_put_kv(&w, "v", &d);
	}
	n = spop_frame_end(&w);
	assert_true(n > 0);
	feed(c, buf, (size_t)n);
	assert_int_equal(spoa_conn_process(c), SPOA_IO_CONTINUE);
	assert_int_equal(nb_held, 1);
	assert_int_equal(c->inflight, 1);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 0);

	spoa_req_release(held[0]);
	assert_int_equal(want_write_calls, 1);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 1);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_ACK);
	assert_int_equal(f.stream_id, 5);
	assert_int_equal(f.frame_id, 1);
	p = f.payload;
	end = p + f.payload_len;
	assert_int_equal(spop_action_next(&p, end, &a), 1);
	assert_int_equal(a.name.len, 7);
	assert_memory_equal(a.name.ptr, "holdrel", 7);
	assert_int_equal(spop_action_next(&p, end, &a), 1);
	assert_memory_equal(a.name.ptr, "echo", 4);
	assert_int_equal(next_out(c, &f, out, sizeof(out)), 0);
	assert_int_equal(c->inflight, 0);
	spoa_conn_close(c);
}

/* Runs one NOTIFY of message `name` in a child process. Returns the
 * child's wait status. */
static int notify_in_child(const char *name)
{
	pid_t pid = fork();
	int st = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct spoa_conn *c;
		uint8_t buf[512];
		ssize_t n;

		/* No cmocka assertion here: a failure must not unwind into
		 * the parent's test runner. */
		c = spoa_conn_new(65536, &ops, NULL, NULL, 1);
		n = spop_build_haproxy_hello(buf, sizeof(buf), 16380, 0);
		if (!c || n <= 0)
			_exit(3);
		feed(c, buf, (size_t)n);
		if (spoa_conn_process(c) != SPOA_IO_CONTINUE)
			_exit(4);
		n = notify(buf, sizeof(buf), 1, 1, name, "v", SPOP_FRM_FL_FIN);
		feed(c, buf, (size_t)n);
		spoa_conn_process(c);
		_exit(0);   /* past the leak check: a held request stays held */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

/* A handler whose answer contradicts its holds aborts the agent; honest
 * ones (done, pending, held and released) do not. */
static void test_handler_contract_aborts(void **state)
{
	static const char *const liars[] = { "lie-pending", "lie-done" };
	static const char *const honest[] = { "echo", "async", "holdrel" };
	int st;

	for (size_t i = 0; i < 2; i++) {
		st = notify_in_child(liars[i]);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGABRT);
	}
	for (size_t i = 0; i < 3; i++) {
		st = notify_in_child(honest[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_negotiates_min_frame),
		cmocka_unit_test(test_healthcheck_closes),
		cmocka_unit_test(test_hello_errors),
		cmocka_unit_test(test_notify_ack),
		cmocka_unit_test(test_pipelining_any_order),
		cmocka_unit_test(test_release_after_close),
		cmocka_unit_test(test_fragmented_notify),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_ack_overflow_keeps_others),
		cmocka_unit_test(test_haproxy_disconnect),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_malformed_notify),
		cmocka_unit_test(test_notify_three_handlers_one_ack),
		cmocka_unit_test(test_handler_contract_aborts),
	};

	return cmocka_run_group_tests(tests, setup_registry, NULL);
}
