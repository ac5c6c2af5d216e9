/*
 * Log lines: one per event worth knowing, with a level. Never a secret, never
 * a body: callers pass lengths and names, not payloads.
 */
#ifndef REALMS_LOG_H
#define REALMS_LOG_H

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Where lines go: stderr (foreground) or syslog (daemon). `max` is the most
 * verbose level printed. Call once, before threads start. */
void log_init(const char *ident, int use_syslog, enum log_level max);

/* Whether a level is printed (to skip building expensive arguments). */
int log_enabled(enum log_level lvl);

void rlog(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* REALMS_LOG_H */
