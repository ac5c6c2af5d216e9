/*
 * Rendering of the channel part of the HAProxy configuration and of the
 * setup page. Names here are the contract with haproxy/realms.cfg and the
 * agent's verdicts: the pool VERDICT_POOL, and up_<channel> for each
 * channel (verdict_attempt). Pure: writes to the FILE it is given.
 */
#include <stdio.h>
#include <string.h>

#include <realms/config.h>
#include <realms/render.h>
#include <realms/verdict.h>

int render_model_offered(const struct realms_config *c, size_t mi)
{
	const struct cfg_model *m = &c->models[mi];

	if (!m->enabled)
		return 0;
	for (size_t i = 0; i < m->n_routes; i++) {
		const struct cfg_channel *ch = m->routes[i].channel;

		if (!ch->enabled)
			continue;
		for (size_t k = 0; k < ch->n_creds; k++)
			if (ch->creds[k].enabled)
				return 1;
	}
	return 0;
}

/* The pool: every allowed request goes there. Its one server is the relay,
 * which asks the agent, for each attempt, which credential to use (the
 * agent remembers what each request already tried). HAProxy keeps doing
 * the retries: the request bytes are in its buffer, and it sends them to
 * the relay again. */
static void render_pool(FILE *f, const struct realms_config *c)
{
	fprintf(f, "backend %s\n", VERDICT_POOL);
	fprintf(f, "    # Every attempt goes to the relay (fe_relay), where the agent\n"
	           "    # chooses its credential: the verdict's for the first one, then\n"
	           "    # one of the token's group not tried yet, in tier order.\n");
	fprintf(f, "    # Retried only before any response byte reached the client, and\n"
	           "    # only for requests that fit in tune.bufsize (docs/failover.md).\n"
	           "    # 425 is the relay's stand-in for an upstream 429 or 529, which\n"
	           "    # retry-on does not take; fe_realms restores the real status.\n"
	           "    # A 403 or another 4xx belongs to the request: never retried.\n");
	fprintf(f, "    retries %d\n", c->failover.attempts - 1);
	fprintf(f, "    retry-on conn-failure empty-response response-timeout 401 425 500 502 503 504\n");
	fprintf(f, "    # Upstream silence that ends an attempt (failover.timeout).\n");
	fprintf(f, "    timeout server %ds\n", c->failover.timeout_s);
	fprintf(f, "    server relay \"unix@${REALMS_RELAY}\"\n\n");
}

/* A channel's backend: every request sent to the channel leaves through
 * it, straight from fe_realms or from the relay, with the agent's choice
 * of credential in txn.realms.* (the verdict's, or realms-attempt's). */
static void render_upstream(FILE *f, const struct realms_config *c, const struct cfg_channel *ch)
{
	fprintf(f, "backend up_%s\n", ch->name);
	fprintf(f, "    # channel %s: %s\n", ch->name, ch->base_url);
	fprintf(f, "    http-request set-header host %s\n", ch->authority);
	if (ch->path_prefix[0]) {
		/* The provider lives under a path: /v1/messages becomes
		 * <prefix>/v1/messages (the query string stays). '%' starts a
		 * sample in a log-format string: written as "%%". */
		fputs("    http-request set-path \"", f);
		for (const char *q = ch->path_prefix; *q; q++) {
			if (*q == '%')
				fputc('%', f);
			fputc(*q, f);
		}
		fputs("%[path]\"\n", f);
	}
	fprintf(f, "    # The credential's key, in both headers Anthropic-compatible\n"
	           "    # providers read, then forgotten at once so that no later rule or\n"
	           "    # log can see it.\n"
	           "    http-request set-header x-api-key \"%%[var(txn.realms.key)]\"\n"
	           "    http-request set-header authorization \"Bearer %%[var(txn.realms.key)]\"\n"
	           "    http-request unset-var(txn.realms.key)\n");
	if (ch->auth == CFG_AUTH_X_API_KEY)
		fprintf(f, "    # auth x-api-key: the key in x-api-key only\n"
		           "    http-request del-header authorization\n");
	else if (ch->auth == CFG_AUTH_BEARER)
		fprintf(f, "    # auth bearer: the key in Authorization: Bearer only\n"
		           "    http-request del-header x-api-key\n");
	if (ch->n_headers)
		fprintf(f, "    # The channel's headers: fixed by the operator, they replace a\n"
		           "    # client's; values come from the agent per request (they may be\n"
		           "    # secrets) and are forgotten at once.\n");
	for (size_t i = 0; i < ch->n_headers; i++)
		fprintf(f, "    http-request set-header %s \"%%[var(txn.realms.h%zu)]\"\n"
		           "    http-request unset-var(txn.realms.h%zu)\n",
		        ch->headers[i].name, i, i);
	fprintf(f, "    # The Lua filter of the frontend the request came through\n"
	           "    # (haproxy/realms.cfg: fe_realms, fe_relay) splices the body's\n"
	           "    # model name as it streams and reports the attempt's result to\n"
	           "    # the breakers. A frontend without it (a realms.cfg older than\n"
	           "    # this file) would send a rewritten body's old bytes under the\n"
	           "    # new length and leave the breakers blind: refused instead.\n"
	           "    http-request return status 500 content-type application/json "
	           "string '{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
	           "\"message\":\"gateway configuration: the frontend has no Realms "
	           "attempt filter (update haproxy/realms.cfg)\"}}' "
	           "unless { var(txn.realms_attempt_filter) -m found }\n");
	fprintf(f, "    # The rewritten body's length, announced before the headers leave\n"
	           "    # (a chunked body has none to fix).\n"
	           "    http-request set-header content-length \"%%[var(txn.realms.clen)]\" "
	           "if { var(txn.realms.clen) -m found } { req.hdr_cnt(content-length) gt 0 }\n"
	           "    # Usage must be readable from the response: no compression.\n"
	           "    http-request set-header accept-encoding identity\n"
	           "    http-request set-header anthropic-version 2023-06-01 "
	           "unless { req.hdr(anthropic-version) -m found }\n"
	           "    http-request del-header ^x-realms- -m reg\n");
	fprintf(f, "    # Only these upstream headers reach the client: the ones it needs\n"
	           "    # to read the answer and to retry. The rest can identify the\n"
	           "    # provider account behind the gateway (docs/security.md).\n"
	           "    http-response del-header ^(?!(content-type|content-length|"
	           "transfer-encoding|cache-control|date|retry-after|retry-after-ms|"
	           "request-id|x-should-retry)$) -m reg\n"
	           "    # Through the relay, retry-on cannot name 429 or 529: they go\n"
	           "    # back to the pool as 425, the real status alongside (fe_realms\n"
	           "    # restores it).\n"
	           "    http-response set-header x-realms-orig-status \"%%[status]\" "
	           "if { status 429 529 } { var(txn.realms_relay) -m found }\n"
	           "    http-response set-status 425 "
	           "if { status 429 529 } { var(txn.realms_relay) -m found }\n"
	           "    # The credential of this attempt, for the bill (fe_realms reads\n"
	           "    # it; no x-realms-* header reaches the client).\n"
	           "    http-response set-header x-realms-cred \"%%[var(txn.realms.server)]\"\n");
	fprintf(f, "    timeout server %ds\n", c->failover.timeout_s);
	fprintf(f, "    # A failure is final here: the pool, when the request came\n"
	           "    # through it, retries elsewhere; an attempt the pool gave up on\n"
	           "    # is abandoned here too.\n");
	fprintf(f, "    retries 0\n");
	fprintf(f, "    option abortonclose\n");
	fprintf(f, "    server %s %s%s:%d", ch->name, ch->ipv6 ? "ipv6@" : "",
	        ch->host, ch->port);
	/* An absolute path, not "@system-ca": a "ca-base" in the global
	 * section (Debian's stock haproxy.cfg has /etc/ssl/certs) is prefixed
	 * to it on HAProxy 2.6, which then cannot find the bundle. */
	if (ch->tls)
		fprintf(f, " ssl verify required ca-file " RENDER_CA_FILE " sni str(%s)",
		        ch->host);
	/* Start even when the name does not resolve yet. */
	fprintf(f, " init-addr last,libc,none\n\n");
}

int render_haproxy(const struct realms_config *c, FILE *f)
{
	fprintf(f, "# Rendered by realmsctl render-haproxy from %s.\n"
	           "# Do not edit: change the agent's configuration and render again.\n"
	           "# It holds no secret: keys are injected per request from the agent's\n"
	           "# answer, held in a variable only until they are used.\n\n",
	           c->origin ? c->origin : "the configuration");
	render_pool(f, c);
	for (size_t i = 0; i < c->n_channels; i++)
		render_upstream(f, c, &c->channels[i]);
	return ferror(f) ? -1 : 0;
}

static void html_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static const char page_head[] =
"<!doctype html>\n"
"<html lang=\"en\">\n"
"<head>\n"
"<meta charset=\"utf-8\">\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<title>Realms &middot; Claude Code gateway</title>\n"
"<style>\n"
":root{--bg:#f6f5f1;--card:#fff;--ink:#1f1e1c;--mute:#6b6862;--line:#e3e0d8;--accent:#c2410c;--code:#1c1b19}\n"
"*{box-sizing:border-box}\n"
"body{margin:0;background:var(--bg);color:var(--ink);font:16px/1.55 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\n"
"main{max-width:860px;margin:0 auto;padding:48px 24px 64px}\n"
"header{display:flex;align-items:center;gap:14px;margin-bottom:8px}\n"
".logo{width:40px;height:40px;border-radius:10px;background:var(--accent);color:#fff;display:grid;place-items:center;font-weight:700;font-size:20px}\n"
"h1{font-size:28px;margin:0}\n"
".lead{color:var(--mute);margin:0 0 32px}\n"
"section{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:24px 28px;margin-bottom:20px}\n"
"h2{font-size:18px;margin:0 0 12px;display:flex;gap:10px;align-items:center}\n"
".n{width:26px;height:26px;border-radius:50%;background:var(--ink);color:#fff;display:inline-grid;place-items:center;font-size:14px}\n"
"pre{background:var(--code);color:#f3efe6;border-radius:10px;padding:14px 16px;overflow-x:auto;font:14px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:12px 0}\n"
"code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}\n"
"p code,li code,td code{background:#f0ede6;border-radius:5px;padding:1px 5px}\n"
"table{width:100%;border-collapse:collapse;font-size:15px}\n"
"th,td{text-align:left;padding:9px 8px;border-bottom:1px solid var(--line)}\n"
"th{color:var(--mute);font-weight:600;font-size:13px;text-transform:uppercase;letter-spacing:.04em}\n"
"td.num{font-variant-numeric:tabular-nums}\n"
".note{color:var(--mute);font-size:14px}\n"
"footer{color:var(--mute);font-size:13px;text-align:center;margin-top:28px}\n"
"</style>\n"
"</head>\n"
"<body>\n"
"<main>\n"
"<header><div class=\"logo\">R</div><h1>Claude Code through Realms</h1></header>\n"
"<p class=\"lead\">This gateway serves the Anthropic Messages API. Point Claude Code at it with two variables and your team token.</p>\n"
"<section>\n"
"<h2><span class=\"n\">1</span>Get a token</h2>\n"
"<p>Ask your gateway administrator for a personal token. It starts with <code>sk-realms-</code> and is shown once when it is created (<code>realmsctl token add --name you</code>).</p>\n"
"</section>\n"
"<section>\n"
"<h2><span class=\"n\">2</span>Set two variables</h2>\n"
"<pre>export ANTHROPIC_BASE_URL=<span class=\"base\">http://this-gateway</span>\n"
"export ANTHROPIC_AUTH_TOKEN=sk-realms-&hellip;</pre>\n"
"<p>Put them in your shell profile, or in <code>~/.claude/settings.json</code> under <code>\"env\"</code>. <code>ANTHROPIC_API_KEY</code> works too (sent as <code>x-api-key</code>); set only one of the two.</p>\n"
"<p class=\"note\">Optional: choose models with <code>ANTHROPIC_MODEL</code>, or the defaults behind Claude Code's aliases with <code>ANTHROPIC_DEFAULT_OPUS_MODEL</code>, <code>ANTHROPIC_DEFAULT_SONNET_MODEL</code> and <code>ANTHROPIC_DEFAULT_HAIKU_MODEL</code>, using names from the list below.</p>\n"
"</section>\n";

static const char page_tail[] =
"<section>\n"
"<h2><span class=\"n\">4</span>Check the setup</h2>\n"
"<pre>curl -s <span class=\"base\">http://this-gateway</span>/v1/models -H \"x-api-key: $ANTHROPIC_AUTH_TOKEN\"\n"
"claude -p \"say hello\"</pre>\n"
"<p>The first command lists the models your token may use. Errors come back in Anthropic's format: <code>authentication_error</code> means the token is wrong, revoked or expired; <code>not_found_error</code> names a model this gateway does not offer; <code>permission_error</code> means your token may not use it, or one of its budgets is spent (the message says when it resets); <code>rate_limit_error</code> means a rate or concurrency limit, which Claude Code waits out.</p>\n"
"</section>\n"
"<section>\n"
"<h2><span class=\"n\">5</span>See your spend in Claude Code</h2>\n"
"<p>Claude Code's status line can show what your token spent today and this month, and your daily budget if it has one. Get the script:</p>\n"
"<pre>curl -fsS -o ~/.claude/realms-statusline <span class=\"base\">http://this-gateway</span>/realms-statusline\n"
"chmod +x ~/.claude/realms-statusline</pre>\n"
"<p>Then, in <code>~/.claude/settings.json</code>:</p>\n"
"<pre>{\n"
"  \"env\": {\n"
"    \"ANTHROPIC_BASE_URL\": \"<span class=\"base\">http://this-gateway</span>\",\n"
"    \"ANTHROPIC_AUTH_TOKEN\": \"sk-realms-&hellip;\"\n"
"  },\n"
"  \"statusLine\": {\"type\": \"command\", \"command\": \"~/.claude/realms-statusline\"}\n"
"}</pre>\n"
"<p class=\"note\">It shows <code>realms &middot; $1.23 today of $10.00 &middot; $31.40 this month</code>, asks <code>GET /api/usage</code> with your token (never on its command line), and gives up after a second. The same numbers, as JSON: <code>curl -s <span class=\"base\">http://this-gateway</span>/api/usage -H \"x-api-key: $ANTHROPIC_AUTH_TOKEN\"</code>.</p>\n"
"</section>\n"
"<footer>Realms &middot; an HAProxy gateway for the Anthropic API</footer>\n"
"</main>\n"
"<script>\n"
"for (const e of document.querySelectorAll('.base')) e.textContent = location.origin;\n"
"</script>\n"
"</body>\n"
"</html>\n";

int render_setup_page(const struct realms_config *c, FILE *f)
{
	int any = 0;

	fputs(page_head, f);
	fputs("<section>\n<h2><span class=\"n\">3</span>Models offered</h2>\n", f);
	fputs("<table>\n<tr><th>Model</th><th>Input</th><th>Output</th><th>Cache read</th></tr>\n", f);
	for (size_t mi = 0; mi < c->n_models; mi++) {
		const struct cfg_model *m = &c->models[mi];

		if (!render_model_offered(c, mi))
			continue;
		any = 1;
		fputs("<tr><td><code>", f);
		html_escape(f, m->name);
		fputs("</code></td>", f);
		if (m->has_price)
			fprintf(f, "<td class=\"num\">$%.2f</td><td class=\"num\">$%.2f</td>"
			        "<td class=\"num\">$%.2f</td></tr>\n", m->price.base.input,
			        m->price.base.output, m->price.base.cache_read);
		else
			fputs("<td colspan=\"3\" class=\"note\">not priced</td></tr>\n", f);
	}
	if (!any)
		fputs("<tr><td colspan=\"4\" class=\"note\">No model is offered yet.</td></tr>\n", f);
	fputs("</table>\n<p class=\"note\">Prices in USD per million tokens. Your token's "
	      "group may allow only some of these: <code>/v1/models</code> shows yours.</p>\n"
	      "</section>\n", f);
	fputs(page_tail, f);
	return ferror(f) ? -1 : 0;
}
