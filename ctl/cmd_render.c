/*
 * realmsctl render-haproxy: the part of haproxy.cfg that depends on the
 * channels (and the setup page), from the -c configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <realms/config.h>
#include <realms/render.h>

#include "ctl.h"

/* ---------------------------------------------------------------------- */
/* render-haproxy                                                         */
/* ---------------------------------------------------------------------- */

/* Writes through a temporary file and renames it, so HAProxy never reads a
 * half-written file. path "-" is stdout. */
static int render_to(const char *path, int (*fn)(const struct realms_config *, FILE *),
                     const struct realms_config *cfg)
{
	char tmp[4096];
	struct stat st;
	FILE *f;
	int rc;

	if (strcmp(path, "-") == 0)
		return fn(cfg, stdout) < 0 || fflush(stdout) ? -1 : 0;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* /dev/null, a FIFO: written in place; renaming over it would
		 * put a regular file where the device was. */
		f = fopen(path, "w");
		if (!f) {
			ctl_errmsg("%s: %s", path, strerror(errno));
			return -1;
		}
		rc = fn(cfg, f);
		if (fclose(f) != 0 || rc < 0) {
			ctl_errmsg("%s: cannot write", path);
			return -1;
		}
		return 0;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f) {
		ctl_errmsg("%s: %s", tmp, strerror(errno));
		return -1;
	}
	rc = fn(cfg, f);
	if (fclose(f) != 0 || rc < 0 || rename(tmp, path) != 0) {
		ctl_errmsg("%s: cannot write", path);
		remove(tmp);
		return -1;
	}
	return 0;
}

extern const char ctl_statusline_sh[];
extern const unsigned long ctl_statusline_len;

/* Claude Code's status line script (scripts/realms-statusline), next to the
 * setup page: HAProxy serves both (GET /realms-statusline). Written whole
 * or not at all, like the page. */
static int put_statusline(const struct realms_config *cfg, FILE *f)
{
	(void)cfg;
	return fwrite(ctl_statusline_sh, 1, ctl_statusline_len, f) == ctl_statusline_len ? 0 : -1;
}

int ctl_write_statusline(const char *page)
{
	char path[4096];
	const char *slash = strrchr(page, '/');
	struct stat st;
	int n;

	/* A page sent to stdout or a device (/dev/null) has no directory of
	 * its own to put the script in. */
	if (!strcmp(page, "-") || (stat(page, &st) == 0 && !S_ISREG(st.st_mode)))
		return 0;
	n = slash ? snprintf(path, sizeof(path), "%.*s/realms-statusline", (int)(slash - page), page)
	          : snprintf(path, sizeof(path), "realms-statusline");
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	return render_to(path, put_statusline, NULL);
}

int cmd_render_haproxy(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "setup-page", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = "-", *page = NULL;
	int opt;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, "+:o:s:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case 's': page = optarg; break;
		default: return ctl_bad_option("render-haproxy", argc, argv, opt);
		}
	}
	if (optind < argc)
		return ctl_usage_err("render-haproxy", "render-haproxy: unexpected argument '%s'", argv[optind]);
	if (!c->config_path)
		return ctl_usage_err("render-haproxy", "render-haproxy: needs -c FILE");
	if (ctl_config(c) < 0)
		return CTL_ERR;
	if (render_to(out, render_haproxy, c->cfg) < 0)
		return CTL_ERR;
	if (page && (render_to(page, render_setup_page, c->cfg) < 0 ||
	             ctl_write_statusline(page) < 0))
		return CTL_ERR;
	return CTL_OK;
}
