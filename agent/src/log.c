/*
 * Logging (realms/log.h). I/O: stderr or syslog. A line is formatted in
 * full, then written with one write(2) so lines from different threads
 * never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <realms/log.h>

static const char *log_ident = "realms-agent";
static int log_syslog;
static enum log_level log_max = LOG_LVL_INFO;

static const char *const lvl_name[] = { "error", "warning", "info", "debug" };
static const int lvl_syslog[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void log_init(const char *ident, int use_syslog, enum log_level max)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_max = max;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int log_enabled(enum log_level lvl)
{
	return lvl <= log_max;
}

void rlog(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	char msg[900];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (log_syslog) {
		syslog(lvl_syslog[lvl], "%s", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	             "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: %s\n",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_ident,
	             (int)getpid(), lvl_name[lvl], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;   /* nowhere left to report it */
}
