#!/usr/bin/env bash
# Usage counters on /metrics, read by a real Prometheus (Debian's):
# - requests with known usage (the mock's x-mock-usage) through the whole
#   gateway, two models on two channels, two tokens, a refused upstream
#   answer (4xx), streamed and not;
# - the page passes promtool check metrics;
# - Prometheus scrapes the agent's admin listener, and PromQL sums by model
#   and by channel of cost, tokens, web searches and requests equal
#   realmsctl usage --json, to the nano-dollar;
# - per-token series appear only with agent.metrics_tokens (turned on by a
#   reload), and then count exactly what Redis counts per token;
# - records spooled while Redis is down count when their replay commits.
. "$(dirname "$0")/lib.sh"

command -v prometheus >/dev/null || { fail "no prometheus (scripts/bootstrap.sh installs it)"; finish; }
command -v promtool >/dev/null || { fail "no promtool"; finish; }

# persistent: Redis is restarted in the middle
start_redis "" --appendonly yes --appendfsync always || { fail "redis"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
start_mock up
ADMIN=$(free_port)
# config TOKENS: the configuration, per-token series on (true) or off.
config() {
	cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock", "spool": "$T_DIR/spool",
             "admin": "127.0.0.1:$ADMIN", "metrics_tokens": $1 },
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true},
              {"name": "claude-haiku-4-5", "enabled": true} ],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "credentials": [{"name": "k1", "key": "sk-up-1"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}},
    {"name": "alt", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "credentials": [{"name": "k1", "key": "sk-alt-1"}],
     "models": {"claude-haiku-4-5": "claude-haiku-4-5"}}
  ]
}
JSON
}
config false
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
ALICE=$("$REALMS_BIN/realmsctl" token add --name alice 2>/dev/null)
BOB=$("$REALMS_BIN/realmsctl" token add --name bob 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
SENT=0

# req TOKEN MODEL STREAM USAGE [HEADER]: one request with known usage.
req() {
	curl -sS -o /dev/null --max-time 20 -H "x-api-key: $1" -H "content-type: application/json" \
		-H "x-mock-usage: $4" ${5:+-H "$5"} \
		--data-binary "{\"model\":\"$2\",\"max_tokens\":64,\"stream\":$3,\"messages\":[]}" "$URL"
	SENT=$((SENT + 1))
}
# wait_requests N: until Redis counts N requests over every day (30 s).
wait_requests() {
	for _ in $(seq 150); do
		[ "$("$REALMS_BIN/realmsctl" usage --json | python3 -c \
			'import json,sys; print(json.load(sys.stdin)["total"]["requests"])')" -ge "$1" ] && return 0
		sleep 0.2
	done
	return 1
}
# traffic ROUND: a mix of tokens, models, streams and usages.
traffic() {
	local i
	for i in 1 2 3; do
		req "$ALICE" claude-sonnet-4-5 false "in=$((100 * i + $1)),out=$((20 * i)),cw5=3,cw1=4,cr=50,ws=1"
		req "$BOB" claude-haiku-4-5 true "in=$((7 * i)),out=$((900 + i + $1)),cw5=0,cw1=11,cr=0,ws=0"
		req "$BOB" claude-sonnet-4-5 true "in=1234567,out=$((1000 * i)),cw5=$1,cw1=0,cr=999,ws=2"
	done
	# the upstream refuses: a 4xx record
	req "$ALICE" claude-haiku-4-5 false "in=1,out=1" "x-mock-status: 400"
}
traffic 0
wait_requests "$SENT" || fail "Redis did not count $SENT requests"

# ---- the page ---------------------------------------------------------------
curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" >"$T_DIR/metrics"
promtool check metrics <"$T_DIR/metrics" >"$T_DIR/promtool.log" 2>&1
assert_eq "$?" 0 "promtool check metrics accepts the page"
assert_eq "$(cat "$T_DIR/promtool.log")" "" "promtool: no lint warning"
page=$(cat "$T_DIR/metrics")
assert_match "$page" $'# TYPE realms_usage_cost_nusd_total counter\nrealms_usage_cost_nusd_total\\{model="claude-sonnet-4-5",channel="up"\\} [0-9]+' \
	"cost by model and channel, typed counter"
assert_match "$page" 'realms_usage_requests_total\{model="claude-haiku-4-5",channel="alt",class="4xx"\} 1'$'\n' \
	"the refused request: class 4xx"
assert_no_match "$page" 'realms_usage_token_' "no per-token series without agent.metrics_tokens"

# ---- the dashboard's and the docs' PromQL parse ------------------------------
# Every expr of docs/grafana-realms.json and every promql block of
# docs/prometheus.md, Grafana's variables replaced, as recording rules.
python3 - "$REALMS_SRC" >"$T_DIR/rules.yml" <<'PY'
import json, re, sys
src = sys.argv[1]
exprs = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "expr":
                exprs.append(v)
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(json.load(open(src + "/docs/grafana-realms.json")))
doc = open(src + "/docs/prometheus.md").read()
for block in re.findall(r"```promql\n(.*?)```", doc, re.S):
    exprs += [e for e in re.split(r"\n(?=\S)", block.strip())]
sub = {"$__range": "1h", "$__rate_interval": "1m", "$model": ".*", "$channel": ".*",
       "$group": ".*", "$budget_usd_day": "50"}
print("groups:\n  - name: realms\n    rules:")
for i, e in enumerate(exprs):
    for k, v in sub.items():
        e = e.replace(k, v)
    print("      - record: realms:check%d\n        expr: %s" % (i, json.dumps(" ".join(e.split()))))
PY
assert_match "$(grep -c 'record:' "$T_DIR/rules.yml")" '^[1-9][0-9]+$' "PromQL collected from the docs"
promtool check rules "$T_DIR/rules.yml" >"$T_DIR/rules.log" 2>&1
assert_eq "$?" 0 "every PromQL of the dashboard and the docs parses: $(tail -3 "$T_DIR/rules.log")"

# ---- Prometheus -------------------------------------------------------------
PROM=$(free_port)
cat >"$T_DIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: realms
    static_configs:
      - targets: ['127.0.0.1:$ADMIN']
YML
promtool check config "$T_DIR/prometheus.yml" >/dev/null 2>&1
assert_eq "$?" 0 "promtool check config"
spawn prometheus prometheus --config.file="$T_DIR/prometheus.yml" \
	--storage.tsdb.path="$T_DIR/prom-data" --web.listen-address="127.0.0.1:$PROM"
wait_tcp "$PROM" 20 || fail "prometheus did not listen"

# promql QUERY: the instant vector as "labels value" lines, sorted; the
# value as an integer (exact below 2^53: nano-USD up to 9 million USD).
promql() {
	curl -s --max-time 5 --data-urlencode "query=$1" "http://127.0.0.1:$PROM/api/v1/query" |
		python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "success", r
for s in r["data"]["result"]:
    lab = ",".join("%s=%s" % kv for kv in sorted(s["metric"].items()))
    print(lab, int(float(s["value"][1])))' | sort
}
# wait_prom QUERY WANT: until QUERY gives WANT (bounded: 30 s).
wait_prom() {
	for _ in $(seq 60); do
		[ "$(promql "$1")" = "$2" ] && return 0
		sleep 0.5
	done
	return 1
}
wait_prom 'sum(realms_usage_requests_total)' " $SENT" ||
	fail "Prometheus did not scrape $SENT requests: $(promql 'sum(realms_usage_requests_total)')"
assert_eq "$(promql 'up{job="realms"}')" "__name__=up,instance=127.0.0.1:$ADMIN,job=realms 1" "Prometheus scrapes the agent"

# json_by KIND FIELD: "name=VALUE" lines of realmsctl usage --json's
# by_KIND, the way promql prints a sum by that label.
json_by() {
	"$REALMS_BIN/realmsctl" usage --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
for k, v in sorted(j["by_" + sys.argv[1]].items()):
    print("%s=%s %d" % (sys.argv[1], k, v[sys.argv[2]]))' "$1" "$2" | sort
}
json_total() {
	"$REALMS_BIN/realmsctl" usage --json | python3 -c '
import json, sys; print(json.load(sys.stdin)["total"][sys.argv[1]])' "$1"
}
for dim in model channel; do
	assert_eq "$(promql "sum by ($dim) (realms_usage_cost_nusd_total)")" "$(json_by "$dim" cost_nusd)" \
		"cost by $dim: PromQL = realmsctl usage --json, to the nano-dollar"
	for kind in input output cache_write_5m cache_write_1h cache_read; do
		assert_eq "$(promql "sum by ($dim) (realms_usage_tokens_total{kind=\"$kind\"})")" \
			"$(json_by "$dim" "$kind")" "$kind tokens by $dim = --json"
	done
	assert_eq "$(promql "sum by ($dim) (realms_usage_web_search_requests_total)")" \
		"$(json_by "$dim" web_search)" "web searches by $dim = --json"
	assert_eq "$(promql "sum by ($dim) (realms_usage_requests_total)")" "$(json_by "$dim" requests)" \
		"requests by $dim = --json"
done
assert_eq "$(promql 'sum(realms_usage_cost_nusd_total)')" " $(json_total cost_nusd)" "total cost = --json total"
assert_eq "$(promql 'sum(realms_usage_group_cost_nusd_total)')" " $(json_total cost_nusd)" \
	"group series: total cost = --json total"
assert_eq "$(promql 'sum by (class) (realms_usage_requests_total)')" \
	"$(printf 'class=2xx %d\nclass=4xx 1\nclass=5xx 0\nclass=other 0' $((SENT - 1)))" "requests by status class"
assert_eq "$(promql 'count(realms_usage_token_cost_nusd_total)')" "" "no per-token series in Prometheus"

# ---- Redis down: spooled records count when their replay commits -------------
# (tokens are cached by now, so requests pass while Redis is away)
stop_pid "$REDIS_PID"
traffic 1
sleep 1
assert_eq "$(promql 'sum(realms_usage_requests_total)')" " $((SENT - 10))" \
	"records waiting in the spool are not counted yet"
start_redis "$REDIS_PORT" --appendonly yes --appendfsync always || fail "redis restart"
wait_requests "$SENT" || fail "the spool was not replayed"
wait_prom 'sum(realms_usage_requests_total)' " $SENT" || fail "replayed records not counted"
# The tap may send a record again while the agent waits for Redis: the
# spool then holds it twice, and the second replay is a duplicate, which
# must not count.
replayed=$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '$1 == "realms_spool_replayed_total" {print $2}')
assert_eq "$(( replayed >= 10 ))" 1 "the ten records replayed from the spool ($replayed lines)"
assert_eq "$(promql 'sum by (model) (realms_usage_cost_nusd_total)')" "$(json_by model cost_nusd)" \
	"after the replay: cost by model = --json"

# ---- per-token series: agent.metrics_tokens, by a reload ----------------------
config true
kill -HUP "$AGENT_PID"
for _ in $(seq 50); do
	[ "$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '$1 == "realms_config_generation" {print $2}')" = 2 ] && break
	sleep 0.1
done
assert_match "$(curl -s "http://127.0.0.1:$ADMIN/metrics")" $'# TYPE realms_usage_token_cost_nusd_total counter\n# HELP' \
	"after the reload: per-token metrics, no series yet"
"$REALMS_BIN/realmsctl" usage --json >"$T_DIR/json-1"
traffic 5
wait_requests "$SENT" || fail "Redis did not count $SENT requests"
"$REALMS_BIN/realmsctl" usage --json >"$T_DIR/json-2"
# what Redis counted per token since the reload
want=$(python3 - "$T_DIR/json-1" "$T_DIR/json-2" <<'PY'
import json, sys
a, b = (json.load(open(f))["by_token"] for f in sys.argv[1:])
z = dict.fromkeys(["cost_nusd", "output", "requests"], 0)
for t in sorted(b):
    print("token=%s %d %d %d" % (t, *(b[t][k] - a.get(t, z)[k] for k in ("cost_nusd", "output", "requests"))))
PY
)
wait_prom 'sum(realms_usage_requests_total)' " $SENT" || fail "Prometheus did not scrape $SENT requests"
got=$(join <(promql 'sum by (token) (realms_usage_token_cost_nusd_total)') \
	<(promql 'sum by (token) (realms_usage_token_tokens_total{kind="output"})') |
	join - <(promql 'sum by (token) (realms_usage_token_requests_total)'))
assert_eq "$got" "$want" "per-token cost, output tokens and requests = what Redis counted since the reload"
for dim in model channel; do
	assert_eq "$(promql "sum by ($dim) (realms_usage_cost_nusd_total)")" "$(json_by "$dim" cost_nusd)" \
		"after the reload: cost by $dim still = --json"
done

finish
