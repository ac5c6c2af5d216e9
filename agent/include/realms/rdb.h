/*
 * rdb: an asynchronous Redis client for one event loop, on hiredis's async
 * API and its libev adapter. One per worker thread; never shared.
 *
 * Contract (hiredis's own, plus timeouts): every callback given to
 * rdb_command() fires exactly once, on the loop's thread: with the reply, or
 * with NULL when Redis could not answer in time, the connection died, or the
 * client is being freed. The reply belongs to hiredis and is valid during the
 * callback only.
 */
#ifndef REALMS_RDB_H
#define REALMS_RDB_H

#include <hiredis/hiredis.h>

#include <realms/config-t.h>

struct ev_loop;
struct rdb;

typedef void (*rdb_cb)(struct rdb *r, redisReply *reply, void *arg);

/* Called on every successful (re)connection, e.g. to SUBSCRIBE again. */
typedef void (*rdb_connect_cb)(struct rdb *r, void *arg);

/* Starts connecting to ep's address (and keeps reconnecting with back-off),
 * logging in with ep's user and password when it has a password: AUTH goes
 * first on every connection, and a refused AUTH fails that attempt (logged,
 * backed off, tried again). The rdb keeps its own copy of ep. Never NULL
 * unless out of memory. */
struct rdb *rdb_new(struct ev_loop *loop, const struct cfg_redis *ep,
                    const char *label, rdb_connect_cb on_connect, void *arg);

/* Disconnects; pending callbacks fire with NULL before it returns. */
void rdb_free(struct rdb *r);

/* Whether the connection is up (and logged in) right now. */
int rdb_up(const struct rdb *r);

/* Sends a command (printf-like, hiredis format). Returns 0 if queued, -1 if
 * Redis is down or the login is not done yet (the callback is then NOT
 * called): nothing ever goes to Redis ahead of AUTH. A NULL cb sends without
 * waiting for the answer. */
int rdb_command(struct rdb *r, rdb_cb cb, void *arg, const char *fmt, ...);
int rdb_command_argv(struct rdb *r, rdb_cb cb, void *arg, int argc,
                     const char **argv, const size_t *argvlen);

/* Subscribe mode: cb fires for every message on the channel (with the
 * reply array), and with NULL when the connection dies. Use on a dedicated
 * rdb. Returns 0 or -1. */
int rdb_subscribe(struct rdb *r, const char *channel, rdb_cb cb, void *arg);

#endif /* REALMS_RDB_H */
