/*
 * Sessions moved off their first choice: the memory that keeps a session
 * where it went after a failure, so its prompt cache is rebuilt once.
 *
 * Weighted rendezvous hashing (sched.c) gives every session a fixed order
 * of credentials and needs no memory while the first one serves. When it
 * fails or is out, the session moves to the next one; without memory it
 * would move back as soon as the first recovers, and the provider would
 * build its prompt cache a second time. So the verdict remembers, per
 * session id, the credential a session moved to, and uses it first while
 * it is still a usable candidate of the request (verdict.c,
 * session_pick). A session back on its first choice holds no entry.
 *
 * The credential is kept by its server name ("<channel>--<credential>"),
 * never by an index: a reload that keeps the credential keeps the session
 * on it, a reload that removes it leaves a name no candidate has, which
 * the verdict ignores (and replaces).
 *
 * A fixed table shared by the worker threads under one mutex, like
 * tried.c: open addressing over STICK_SLOTS keyed by a 64-bit hash of the
 * session id, a probe window of STICK_PROBE slots, entries living
 * STICK_TTL_MS after their last use. When the window is full its oldest
 * entry is replaced: that session only loses its memory (it goes back to
 * its first choice). Time is passed in.
 */
#ifndef REALMS_STICK_H
#define REALMS_STICK_H

#include <stddef.h>
#include <stdint.h>

#include <realms/limits.h>

/* Longest server name kept: "<channel>--<credential>". A longer one is not
 * remembered (the session then follows its rendezvous order). */
#define STICK_SERVER_MAX           (2u * CFG_NAME_MAX + 2u)

/* The server name of the credential session sess (slen bytes) moved to,
 * copied NUL-terminated into server (size bytes). Returns its length, 0
 * when the session holds no entry, or its entry expired at now_ms, or
 * the name does not fit. A hit refreshes the entry's lifetime. */
size_t stick_get(const char *sess, size_t slen, uint64_t now_ms, char *server, size_t size);

/* Remembers that sess moved to server (len bytes), until now_ms +
 * STICK_TTL_MS. An entry naming another server is overwritten (the
 * session moved again). */
void stick_set(const char *sess, size_t slen, const char *server, size_t len, uint64_t now_ms);

/* Forgets sess: it is back on its first choice. */
void stick_del(const char *sess, size_t slen);

/* Moves remembered so far: stick_set calls that changed a session's
 * credential (for /metrics). */
uint64_t stick_moves(void);

/* Forgets everything (tests). */
void stick_clear(void);

#endif /* REALMS_STICK_H */
