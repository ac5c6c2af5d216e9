/*
 * realmsctl: the admin CLI of Realms. What its commands share.
 *
 * A table of commands (main.c: {name, fn, synopsis, summary, details, subcmds});
 * each command parses its own arguments and may have its own table of
 * subcommands, as "token" does. Redis is reached with blocking hiredis: a
 * CLI does one thing and exits, so there is no event loop here.
 *
 * Exit status: 0 done, 1 operational error (Redis, config, a name that is
 * taken or unknown), 2 usage error, 3 (apply only) left half-applied.
 * Messages go to stderr and never hold a secret; stdout carries only
 * results (the new token, the list, the steps apply completed).
 *
 * Files: main.c (command table, man page, main), ctl.c (what follows in
 * this header), cmd_<family>.c (one command family each).
 *
 * Adding a command: write `int cmd_x(struct ctl *c, int argc, char **argv)`
 * in cmd_x.c (argv[0] is "x"; parse with ctl_getopt_reset() and
 * getopt_long, report refusals with ctl_bad_option() / ctl_usage_err(),
 * "-h/--help" with ctl_help(ctl_find_cmd("x"))), declare it below, add a
 * row to the table in main.c with its synopsis, summary and man-page text.
 * CMake builds every .c file of ctl/ into realmsctl.
 *
 * Adding a subcommand to a family that has a table (token): a row
 * {name, fn, help} before the {NULL} that ends the family's table in its
 * cmd_<family>.c, the function (argv[0] is the subcommand's name), and its
 * paragraph in the family's man-page text in main.c. The SYNOPSIS lines and
 * the "expects a subcommand (...)" message are built from the table.
 */
#ifndef REALMS_CTL_H
#define REALMS_CTL_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define CTL_OK              0
#define CTL_ERR             1
#define CTL_USAGE           2
/* apply: the gateway may run a mix of old and new (a rollback failed). */
#define CTL_PARTIAL         3

/* Arguments of one Redis command built by ctl_rcmd(). */
#define CTL_MAX_ARGS        32

struct realms_config;

struct ctl {
	const char *config_path;    /* -c, or NULL */
	struct realms_config *cfg;  /* loaded on first use */
	redisContext *rc;           /* connected on first use */
};

/* A command or a subcommand: argv[0] is its name. Returns CTL_OK, CTL_ERR
 * or CTL_USAGE. */
typedef int (*ctl_fn)(struct ctl *c, int argc, char **argv);

/* One row of a family's subcommand table; the table ends with {NULL}. */
struct ctl_subcmd {
	const char *name;
	ctl_fn fn;
	const char *help;           /* its SYNOPSIS line, after "<family> " */
};

struct ctl_cmd {
	const char *name;
	ctl_fn fn;
	const char *synopsis;       /* SYNOPSIS lines, without "realmsctl ";
	                               NULL when subcmds gives them */
	const char *summary;        /* one line for the command list */
	const char *details;        /* COMMANDS (and OPTIONS) of its man page */
	const struct ctl_subcmd *subcmds;  /* or NULL */
};

/* ---------------------------------------------------------------------- */
/* Commands (cmd_*.c) and their man pages (main.c)                        */
/* ---------------------------------------------------------------------- */

int cmd_apply(struct ctl *c, int argc, char **argv);
int cmd_render_haproxy(struct ctl *c, int argc, char **argv);
int cmd_token(struct ctl *c, int argc, char **argv);
int cmd_usage(struct ctl *c, int argc, char **argv);

extern const struct ctl_subcmd token_subcmds[];

/* Writes Claude Code's status line script (scripts/realms-statusline, built
 * in) as "realms-statusline" in the directory of the setup page `page`
 * (nothing for "-" or a device). Returns 0, or -1 after printing why. */
int ctl_write_statusline(const char *page);

/* The row of command name, or NULL. */
const struct ctl_cmd *ctl_find_cmd(const char *name);
/* The whole man page (cmd NULL) or one command's, on stdout. */
void ctl_help(const struct ctl_cmd *cmd);

/* ---------------------------------------------------------------------- */
/* Messages and options (ctl.c)                                           */
/* ---------------------------------------------------------------------- */

/* "realmsctl: <message>\n" on stderr. */
__attribute__((format(printf, 1, 2)))
void ctl_errmsg(const char *fmt, ...);

/* A usage error: the message, a pointer to the help of help_cmd ("" for
 * the whole page, else the command followed by a space), status 2. */
__attribute__((format(printf, 2, 3)))
int ctl_usage_err(const char *help_cmd, const char *fmt, ...);

/* Sets up getopt for a new argv (glibc: optind 0 re-initialises). */
void ctl_getopt_reset(void);

/* The usage error for what getopt_long just refused. */
int ctl_bad_option(const char *cmd, int argc, char **argv, int opt);

/* ---------------------------------------------------------------------- */
/* Configuration and Redis (ctl.c)                                        */
/* ---------------------------------------------------------------------- */

/* Loads the -c file once into c->cfg. Returns 0 (also when there is no -c)
 * or -1 after printing why. */
int ctl_config(struct ctl *c);

/* Connects once (REALMS_REDIS*, else the config's "redis", else the
 * default) and logs in. Returns c->rc, or NULL after printing why. */
redisContext *ctl_redis(struct ctl *c);

/* Runs one command (NULL-terminated list of NUL-terminated strings).
 * Returns the reply (caller frees), or NULL after printing the I/O or
 * Redis error. `what` names the step in messages. */
redisReply *ctl_rcmd(struct ctl *c, const char *what, const char **argv);
#define RCMD(c, what, ...) ctl_rcmd((c), (what), (const char *[]){ __VA_ARGS__, NULL })

/* Sends a command whose answer only matters as success. Returns 0 or -1. */
int ctl_rcmd_ok(struct ctl *c, const char *what, const char **argv);
#define RCMD_OK(c, what, ...) ctl_rcmd_ok((c), (what), (const char *[]){ __VA_ARGS__, NULL })

/* The field `f` of an HGETALL reply, or NULL; points into r. */
const char *ctl_hfield(const redisReply *r, const char *f);

/* s as a JSON string on stdout, with the escapes RFC 8259 requires. */
void ctl_json_str(const char *s);

#endif /* REALMS_CTL_H */
