/*
 * realmsctl: the table of commands, the man page, main(). See ctl.h.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <realms/config.h>
#include <realms/limits.h>
#include <realms/token.h>

#include "ctl.h"

/* Numbers the man page states in words. */
_Static_assert(TOKEN_NAME_MAX == 64, "token add says names are 1 to 64 bytes");
_Static_assert(TOKEN_ID_LEN == 12, "token list says the ID is 12 hex digits");
_Static_assert(CTL_USAGE_DAYS == 30, "usage says the default range starts 30 days ago");
_Static_assert(CTL_REDIS_TIMEOUT_S == 2, "ENVIRONMENT says Redis times out after 2 seconds");

/* ---------------------------------------------------------------------- */
/* Commands                                                               */
/* ---------------------------------------------------------------------- */

static const struct ctl_cmd cmd_table[] = {
	{
		"apply", cmd_apply,
		"-c FILE apply --channels FILE [--setup-page FILE] -f FILE... [OPTIONS]",
		"check realms.json, render, haproxy -c, reload HAProxy and the agent",
		"APPLY\n"
		"    -c FILE apply --channels FILE [--setup-page FILE] -f FILE... [options]\n"
		"        Make the running gateway use FILE after an edit, in this order,\n"
		"        stopping at the first failure:\n"
		"        1. load FILE as the agent does (every error is printed);\n"
		"        2. check that HAProxy's master CLI answers, that the agent's\n"
		"           pid is alive and that its admin listener (agent.admin)\n"
		"           answers;\n"
		"        3. render the channel part to CHANNELS.new (and the setup page\n"
		"           to PAGE.new), next to the live files;\n"
		"        4. run haproxy -c on the -f files, CHANNELS.new in place of\n"
		"           CHANNELS (added last when no -f names it);\n"
		"        5. keep the live files as CHANNELS.bak (PAGE.bak) and rename the\n"
		"           new ones over them;\n"
		"        6. reload HAProxy and wait for its new worker;\n"
		"        7. reload the agent and, with agent.admin, wait until its\n"
		"           /metrics names FILE's SHA-256 in a new generation.\n"
		"        Up to 5 nothing running changes. If HAProxy refuses to reload,\n"
		"        the .bak files are put back; if the agent does, they are put back\n"
		"        and HAProxy is reloaded on them. When the rendered files are\n"
		"        unchanged, HAProxy is neither checked nor reloaded. Streams in\n"
		"        flight finish in HAProxy's previous worker and are billed once.\n"
		"        haproxy -c runs in the environment of HAProxy's master (from\n"
		"        /proc/PID/environ, HAPROXY_* left out), so the variables\n"
		"        realms.cfg reads are HAProxy's own; when that cannot be read\n"
		"        (another user), in this one. Run apply in the agent's\n"
		"        environment when FILE has \"env:\" secrets. Each step that\n"
		"        completes prints one line on stdout.\n"
		"        --channels FILE     the channel part HAProxy loads (required)\n"
		"        --setup-page FILE   also the setup page HAProxy serves at /\n"
		"        -f, --haproxy-file FILE\n"
		"                            a file HAProxy loads, repeated in HAProxy's\n"
		"                            order (at least one: realms.cfg)\n"
		"        --haproxy-master SOCKET\n"
		"                            reload through HAProxy's master CLI (HAProxy\n"
		"                            started with -W -S SOCKET); HAProxy 2.6 and\n"
		"                            3.0 both work\n"
		"        --haproxy-unit UNIT run systemctl reload UNIT instead\n"
		"                            Without either: /run/haproxy-master.sock\n"
		"                            (Debian's haproxy.service) when it exists,\n"
		"                            else unit haproxy when systemd runs.\n"
		"        --agent-pidfile FILE  send SIGHUP to the pid in FILE (the\n"
		"                            agent's -p)\n"
		"        --agent-unit UNIT   run systemctl reload UNIT instead (default\n"
		"                            realms-agent when systemd runs)\n"
		"        --haproxy PATH      the haproxy program for -c (default: haproxy\n"
		"                            from PATH)\n"
		"        --timeout SECONDS   wait at most this long for each reload\n"
		"                            (default 30)\n"
		"        Exit status: 0 applied; 1 not applied, the gateway runs as\n"
		"        before (the message says which step failed); 2 usage error; 3 a\n"
		"        rollback failed too: the gateway may run a mix of both.\n",
		NULL,
	},
	{
		"render-haproxy", cmd_render_haproxy,
		"-c FILE render-haproxy [-o FILE] [--setup-page FILE]",
		"write the channel part of haproxy.cfg (and the setup page)",
		"RENDER-HAPROXY\n"
		"    -c FILE render-haproxy [-o FILE] [--setup-page FILE]\n"
		"        Write the part of the HAProxy configuration that depends on\n"
		"        the channels: the realms_pool backend (retries and timeouts\n"
		"        from \"failover\", its one server the relay) and one\n"
		"        up_<channel> backend per channel (address, TLS, SNI, Host and\n"
		"        path prefix from base_url). It holds no secret: keys and\n"
		"        channel headers come from the agent per request. Load it after\n"
		"        haproxy/realms.cfg. Files are written whole or not at all.\n"
		"        -o FILE             output file (default: stdout)\n"
		"        --setup-page FILE   also write the Claude Code setup page\n"
		"                            that HAProxy serves at /, and next to it\n"
		"                            realms-statusline, the status line script\n"
		"                            it serves at /realms-statusline\n",

		NULL,
	},
	{
		"token", cmd_token,
		NULL,   /* from token_subcmds */
		"create, change, rotate, show, list and revoke client tokens",
		"TOKEN COMMANDS\n"
		"    token add --name NAME [--group GROUP] [--expires WHEN]\n"
		"              [--limit SPEC]... [--models M1,M2,...]\n"
		"        Create a token and print it on stdout, alone on its line, so\n"
		"        that tok=$(realmsctl token add --name x) works. It is shown\n"
		"        this once: Redis keeps only its SHA-256. NAME is unique, even\n"
		"        among revoked tokens, and is 1 to 64 of A-Z a-z 0-9 . _ @ -.\n"
		"        --group GROUP   the group whose channels it may use (default\n"
		"                        \"" CFG_GROUP_DEFAULT "\"); with -c it must be in the\n"
		"                        configuration's \"groups\".\n"
		"        --expires WHEN  YYYY-MM-DD (valid through that day, UTC),\n"
		"                        YYYY-MM-DDTHH:MM:SSZ, <N>d, <N>h or <N>m from\n"
		"                        now, or never (the default).\n"
		"        --limit SPEC    NAME=VALUE, repeatable: usd/5h, usd/day,\n"
		"                        usd/week, usd/month (US dollars, up to 9\n"
		"                        decimals), rpm (requests per minute),\n"
		"                        concurrency (requests in flight). It replaces\n"
		"                        the group's default of the same name.\n"
		"        --models LIST   the public model names it may use, separated\n"
		"                        by commas (default: all of its group's).\n"
		"\n"
		"    token set NAME [--group G] [--expires WHEN] [--limit SPEC]...\n"
		"              [--clear-limit NAME]... [--models LIST | --all-models]\n"
		"        Change a token; what is not named stays. --clear-limit drops\n"
		"        the token's own limit of that name (its group's default, if\n"
		"        any, applies again); --all-models lifts a model list. Agents\n"
		"        read the token again at once.\n"
		"\n"
		"    token rotate NAME [--grace DURATION]\n"
		"        Print a new secret for NAME, as token add does. The old one\n"
		"        works until the grace ends: 0 (the default: at once), <N>s,\n"
		"        <N>m, <N>h or <N>d. Usage, limits and history stay with the\n"
		"        name; revoking NAME revokes both.\n"
		"\n"
		"    token show NAME [--json]\n"
		"        The token's group, models, limits, spend in each window, what\n"
		"        remains, when each window resets, its reservations and its\n"
		"        requests in flight; with -c, its group's default limits and\n"
		"        shared totals too, and the windows in its \"timezone\".\n"
		"        --json prints one object: name, group, status, id, expires,\n"
		"        models (null: all), token_limits, limits, spent_usd,\n"
		"        reserved_usd, remaining_usd, resets, in_flight, group_total.\n"
		"\n"
		"    token list [--json]\n"
		"        Show every token: NAME GROUP STATUS CREATED EXPIRES ID, sorted\n"
		"        by name, times in UTC. STATUS is active, revoked or expired.\n"
		"        ID is the first 12 hex digits of the token's SHA-256, as in\n"
		"        the agent's logs. --json prints a JSON array of objects with\n"
		"        name, group, status, created, expires, revoked_at (unix\n"
		"        seconds, 0 for never/not revoked) and id.\n"
		"\n"
		"    token revoke NAME\n"
		"        Mark the token revoked and publish its hash on\n"
		"        realms:token-events, so that every agent forgets it at once.\n"
		"        An unknown NAME is an error (exit 1).\n",
		token_subcmds,
	},
	{
		"usage", cmd_usage,
		"usage [--token NAME] [--model MODEL] [--channel NAME] [--since DAY] [--until DAY] "
		"[--by LIST] [--json | --csv]",
		"show the usage and cost recorded by the agents",
		"USAGE\n"
		"    usage [--token NAME] [--model MODEL] [--channel NAME]\n"
		"          [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--by LIST]\n"
		"          [--json | --csv]\n"
		"        Sum what the agents recorded from --since to --until, both\n"
		"        included (UTC days of the requests' start; default: 30 days\n"
		"        ago to today). One row for the total, then one per token,\n"
		"        per model and per channel, sorted by name: KIND NAME\n"
		"        REQUESTS ERRORS PARTIAL INPUT OUTPUT CACHE_W5M CACHE_W1H\n"
		"        CACHE_READ WEB_SEARCH COST_USD. ERRORS counts answers with\n"
		"        status 400 or more or cut short (PARTIAL). Token counts are\n"
		"        exact; COST_USD is rounded to the micro-dollar. An empty name\n"
		"        (a request without a token or channel) shows as (none).\n"
		"        --token, --model, --channel  count only requests with that\n"
		"                        name (exact match; they combine: --token a\n"
		"                        --model m is a's use of m). The breakdowns\n"
		"                        are narrowed the same way.\n"
		"        --since, --until  the range; a range without data prints\n"
		"                        zeros. --since after --until is an error.\n"
		"        --json          one JSON object, a stable format described\n"
		"                        in docs/redis.md: since, until, filters,\n"
		"                        total, by_token, by_model, by_channel; all\n"
		"                        counters are integers, the cost in nano-USD\n"
		"                        (cost_nusd). With --by, also by (the list)\n"
		"                        and groups (one object per group).\n"
		"        --by LIST       group by a comma-separated list of token,\n"
		"                        model, channel and day, each at most once;\n"
		"                        the list orders the columns: --by day,token\n"
		"                        is one row per day and token. Rows sorted by\n"
		"                        their columns, then a (total) row.\n"
		"        --csv           RFC 4180 CSV, CRLF line ends: a header row,\n"
		"                        then one row per group (the total alone\n"
		"                        without --by): the --by columns, the ten\n"
		"                        counters, cost_nusd and cost_usd (exact\n"
		"                        decimal USD, 9 digits). A name with a comma,\n"
		"                        a quote, CR or LF is quoted.\n",

		NULL,
	},
};

/* The table and its length. */
static const struct ctl_cmd *commands(size_t *n)
{
	if (n)
		*n = sizeof(cmd_table) / sizeof(cmd_table[0]);
	return cmd_table;
}

const struct ctl_cmd *ctl_find_cmd(const char *name)
{
	size_t n, i;
	const struct ctl_cmd *cmds = commands(&n);

	for (i = 0; i < n; i++)
		if (strcmp(name, cmds[i].name) == 0)
			return &cmds[i];
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Man page                                                               */
/* ---------------------------------------------------------------------- */

static const char help_options[] =
	"OPTIONS\n"
	"    -c FILE, --config FILE\n"
	"        Read the gateway's configuration (the realms-agent JSON file):\n"
	"        its \"redis\" (address, user, password), and its groups, which\n"
	"        \"token add\" checks --group against. Without it, any\n"
	"        well-formed group name is taken. A warning is printed on stderr\n"
	"        when other users can read secrets: the file itself if it holds\n"
	"        any inline, or a \"file:\" secret it names.\n"
	"\n"
	"    -h, --help\n"
	"        Show this page. \"realmsctl COMMAND --help\" shows the page of\n"
	"        one command.\n";

static const char help_env[] =
	"ENVIRONMENT\n"
	"    Each of these replaces one part of the configuration's \"redis\"\n"
	"    (as for realms-agent); unset or empty means not given. Redis\n"
	"    traffic, AUTH included, is not encrypted: reach a remote Redis\n"
	"    through a unix socket or a TLS tunnel (docs/redis.md).\n"
	"\n"
	"    REALMS_REDIS\n"
	"        The Redis address: \"host:port\", \"[v6]:port\", \"unix:/path\"\n"
	"        or \"/path\" (a unix socket). Without it and without -c,\n"
	"        " CFG_REDIS_DEFAULT ". Connections and commands time out after 2\n"
	"        seconds.\n"
	"\n"
	"    REALMS_REDIS_USER\n"
	"        The Redis ACL user to log in as (AUTH user password). Without a\n"
	"        user, AUTH sends the password alone (requirepass).\n"
	"\n"
	"    REALMS_REDIS_PASSWORD_FILE\n"
	"        A file holding the Redis password (trailing newline removed).\n"
	"        The preferred way: keep the file mode 0600. A password is\n"
	"        never printed; a refused AUTH exits 1.\n"
	"\n"
	"    REALMS_REDIS_PASSWORD\n"
	"        The password itself, when a file will not do (every child of\n"
	"        the shell that sets it inherits it). Not with _FILE.\n";

static const char help_exit[] =
	"EXIT STATUS\n"
	"    0   Success.\n"
	"    1   Operational error: Redis unreachable, refusing AUTH or failing,\n"
	"        configuration invalid, a token name already taken or not found,\n"
	"        an unknown group, a step of apply that failed (the gateway runs\n"
	"        as before). The reason is printed on stderr.\n"
	"    2   Usage error: unknown command or option, missing or malformed\n"
	"        argument.\n"
	"    3   apply only: a step failed and so did putting the previous\n"
	"        configuration back; the gateway may run a mix of both.\n";

/* The whole man page (cmd NULL) or one command's. */
void ctl_help(const struct ctl_cmd *cmd)
{
	const struct ctl_cmd *cmds;
	size_t n, i;
	const struct ctl_subcmd *sub;
	const char *s, *e;

	cmds = commands(&n);
	if (cmd) {
		cmds = cmd;
		n = 1;
	}
	fputs("NAME\n", stdout);
	if (cmd)
		printf("    realmsctl %s - %s\n\n", cmd->name, cmd->summary);
	else
		fputs("    realmsctl - administer a Realms gateway\n\n", stdout);

	fputs("SYNOPSIS\n", stdout);
	for (i = 0; i < n; i++) {
		/* one "realmsctl [-c FILE] ..." line per subcommand, or per
		 * synopsis line */
		for (sub = cmds[i].subcmds; sub && sub->name; sub++)
			printf("    realmsctl [-c FILE] %s %s\n", cmds[i].name, sub->help);
		for (s = cmds[i].subcmds ? "" : cmds[i].synopsis; *s; s = *e ? e + 1 : e) {
			e = strchr(s, '\n');
			if (!e)
				e = s + strlen(s);
			printf("    realmsctl [-c FILE] %.*s\n", (int)(e - s), s);
		}
	}
	if (cmd)
		printf("    realmsctl %s --help\n\n", cmd->name);
	else
		fputs("    realmsctl -h | --help\n\n", stdout);

	if (!cmd) {
		fputs("DESCRIPTION\n"
		      "    realmsctl manages what the realms-agent reads from Redis: the\n"
		      "    client tokens (stored as SHA-256 hashes only; a token is shown\n"
		      "    once, when it is created). The agents share the same Redis, so\n"
		      "    a change made here applies to every node. It also reports the\n"
		      "    usage the agents record there, and applies an edited\n"
		      "    configuration to HAProxy and the agent in one step.\n\n", stdout);
		fputs("COMMANDS\n", stdout);
		for (i = 0; i < n; i++)
			printf("    %-10s %s\n", cmds[i].name, cmds[i].summary);
		fputc('\n', stdout);
	}
	for (i = 0; i < n; i++) {
		fputs(cmds[i].details, stdout);
		fputc('\n', stdout);
	}
	fputs(help_options, stdout);
	fputc('\n', stdout);
	fputs(help_env, stdout);
	fputc('\n', stdout);
	fputs(help_exit, stdout);
}

/* ---------------------------------------------------------------------- */
/* main                                                                   */
/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { 0 };
	const struct ctl_cmd *cmd;
	int opt, rc;

	ctl_getopt_reset();
	/* "+": stop at the command; what follows is the command's. */
	while ((opt = getopt_long(argc, argv, "+:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': c.config_path = optarg; break;
		case 'h': ctl_help(NULL); return CTL_OK;
		default: return ctl_bad_option("", argc, argv, opt);
		}
	}
	if (optind >= argc)
		return ctl_usage_err("", "expects a command");
	if (strcmp(argv[optind], "help") == 0) {
		ctl_help(NULL);
		return CTL_OK;
	}
	cmd = ctl_find_cmd(argv[optind]);
	if (!cmd)
		return ctl_usage_err("", "unknown command '%s'", argv[optind]);

	rc = cmd->fn(&c, argc - optind, argv + optind);
	if (c.rc)
		redisFree(c.rc);
	config_unref(c.cfg);
	return rc;
}
