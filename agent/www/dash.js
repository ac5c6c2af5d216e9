// The Realms dashboard: reads the admin API (/api/admin/usage and
// /api/admin/events) with the credential the operator typed, and draws it.
// Every name from the data is set as text (textContent), never as markup.
// No build step: this file is served as it is.
'use strict';

(function () {
  const KEY = 'realms-admin-token';
  const FIELDS = ['requests', 'errors', 'partial', 'estimated', 'input', 'output',
    'cache_write_5m', 'cache_write_1h', 'cache_read', 'web_search', 'cost_nusd'];
  const HEADS = ['requests', 'errors', 'partial', 'estimated', 'input', 'output',
    'cache w 5m', 'cache w 1h', 'cache read', 'web search', 'cost'];
  let chart = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // Integers beyond 2^53 (nano-dollars past about nine million dollars)
  // stay exact where the browser gives the number's source text.
  function parseJSON(text) {
    return JSON.parse(text, function (k, v, ctx) {
      if (typeof v === 'number' && !Number.isSafeInteger(v) && ctx && typeof ctx.source === 'string' &&
          /^[0-9]+$/.test(ctx.source)) return BigInt(ctx.source);
      return v;
    });
  }

  // Nano-USD (an integer, Number or BigInt) as exact dollars: "12.50",
  // "0.000000001", at least two decimals, no rounding.
  function usd(n) {
    const s = String(n).padStart(10, '0');
    let frac = s.slice(-9).replace(/0+$/, '');
    while (frac.length < 2) frac += '0';
    return '$' + s.slice(0, -9) + '.' + frac;
  }

  function num(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f');
  }

  function fieldCell(tag, field, value) {
    const c = el(tag, field === 'cost_nusd' ? usd(value) : num(value), 'n');
    c.dataset.field = field;
    c.dataset.value = String(value);
    return c;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(state, message) {
    document.body.dataset.state = state;
    $('login').hidden = state !== 'login';
    $('data').hidden = state !== 'ready';
    $('logout').hidden = state === 'login';
    const err = $('dash-error');
    err.hidden = !message;
    err.textContent = message || '';
  }

  // Removes every number from the page, so that an error never leaves the
  // last numbers looking current.
  function wipe() {
    ['totals', 't-day', 't-token', 't-model', 't-channel', 't-events'].forEach((id) => clear($(id)));
    delete $('totals').dataset.kind;
    delete $('totals').dataset.name;
    $('range-shown').textContent = '';
    if (chart) { chart.destroy(); chart = null; }
  }

  async function api(path, token) {
    const r = await fetch(path, {
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store', credentials: 'omit', redirect: 'error',
    });
    const text = await r.text();
    let body = null;
    try { body = parseJSON(text); } catch (e) { body = null; }
    if (!r.ok || !body) {
      const msg = body && body.error && body.error.message ? body.error.message : 'HTTP ' + r.status;
      const e = new Error(msg);
      e.status = r.status;
      throw e;
    }
    return body;
  }

  function headRow(table, cols) {
    const tr = el('tr');
    cols.forEach((c) => tr.appendChild(el('th', c)));
    const thead = el('thead');
    thead.appendChild(tr);
    table.appendChild(thead);
  }

  // One table of counters: a row per name, data-kind and data-name on it.
  function countersTable(table, kind, title, map, extra) {
    clear(table);
    headRow(table, [title].concat(extra ? extra.heads : [], HEADS));
    const tbody = el('tbody');
    const names = Object.keys(map);
    if (!names.length) {
      const tr = el('tr');
      const td = el('td', 'no data in this range', 'muted');
      td.colSpan = HEADS.length + 1 + (extra ? extra.heads.length : 0);
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    names.forEach((name) => {
      const s = map[name];
      const tr = el('tr');
      tr.dataset.kind = kind;
      tr.dataset.name = name;
      if (Number(s.errors) > 0 || Number(s.partial) > 0 || Number(s.estimated) > 0) tr.className = 'flagged';
      tr.appendChild(el('th', name === '' ? '(none)' : name));
      if (extra) extra.cells(tr, name);
      FIELDS.forEach((f) => tr.appendChild(fieldCell('td', f, s[f])));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
  }

  function totals(t) {
    const box = $('totals');
    clear(box);
    box.dataset.kind = 'total';
    box.dataset.name = 'all';
    FIELDS.forEach((f, i) => {
      const card = el('div', null, 'card' + ((f === 'errors' || f === 'partial' || f === 'estimated') &&
        Number(t[f]) > 0 ? ' warn' : ''));
      card.appendChild(el('span', HEADS[i], 'label'));
      card.appendChild(fieldCell('span', f, t[f]));
      box.appendChild(card);
    });
  }

  function budgetCells(budgets) {
    return function (tr, name) {
      const td = el('td', null, 'budgets');
      const b = budgets[name];
      if (!b) {
        td.textContent = name === '' ? '' : 'not read';
      } else if (b.status === 'unknown') {
        td.textContent = 'token not found';
      } else {
        const st = el('span', b.status + ' · ' + b.group, b.status === 'active' ? 'muted' : 'bad');
        td.appendChild(st);
        const kinds = Object.keys(b.limits);
        if (!kinds.length) td.appendChild(el('div', 'no limits', 'muted'));
        kinds.forEach((k) => {
          const line = el('div', null, 'budget');
          line.dataset.budget = k;
          line.dataset.limit = String(b.limits[k]);
          if (k.startsWith('usd/')) {
            const spent = b.spent[k];
            const pct = Number(b.limits[k]) > 0 ? Math.floor(Number(spent) * 100 / Number(b.limits[k])) : 100;
            line.dataset.spent = String(spent);
            const m = el('meter');
            m.min = 0; m.max = Number(b.limits[k]); m.value = Number(spent);
            m.low = m.max * 0.5; m.high = m.max * 0.8; m.optimum = 0;
            line.appendChild(el('span', k, 'kind'));
            line.appendChild(m);
            line.appendChild(el('span', usd(spent) + ' of ' + usd(b.limits[k]) + ' (' + pct + '%)',
              pct >= 100 ? 'bad' : pct >= 80 ? 'warn' : ''));
          } else {
            line.appendChild(el('span', k, 'kind'));
            line.appendChild(el('span', String(b.limits[k])));
          }
          td.appendChild(line);
        });
        if (b.limits_unreadable) td.appendChild(el('div', 'stored limits unreadable', 'bad'));
      }
      tr.appendChild(td);
    };
  }

  function dayList(since, until) {
    const out = [];
    const d = new Date(since + 'T00:00:00Z');
    const end = new Date(until + 'T00:00:00Z');
    for (let i = 0; d <= end && i < 400; i++) {
      out.push(d.toISOString().slice(0, 10));
      d.setUTCDate(d.getUTCDate() + 1);
    }
    return out;
  }

  function drawChart(u) {
    if (chart) { chart.destroy(); chart = null; }
    if (typeof window.Chart !== 'function') return;   // tables only
    const days = dayList(u.since, u.until);
    const data = days.map((d) => (u.by_day[d] ? Number(u.by_day[d].cost_nusd) / 1e9 : 0));
    chart = new window.Chart($('chart-days'), {
      type: 'bar',
      data: { labels: days, datasets: [{ label: 'spend (USD)', data: data, backgroundColor: '#3b6fb6' }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false },
          tooltip: { callbacks: { label: (c) => usd(u.by_day[c.label] ? u.by_day[c.label].cost_nusd : 0) } } },
        scales: { y: { beginAtZero: true, ticks: { callback: (v) => '$' + v } } },
      },
    });
  }

  function events(ev) {
    const table = $('t-events');
    clear(table);
    const cols = ['time', 'request', 'token', 'model', 'channel', 'status', 'partial', 'input', 'output', 'cost'];
    headRow(table, cols);
    const tbody = el('tbody');
    ev.events.forEach((e) => {
      const f = e.fields;
      const tr = el('tr');
      tr.dataset.kind = 'event';
      tr.dataset.id = e.id;
      const bad = Number(f.status) >= 400 || (f.partial || '') !== '';
      if (bad) tr.className = 'flagged';
      const ts = Number(f.ts_ms);
      tr.appendChild(el('td', Number.isFinite(ts) ? new Date(ts).toISOString().replace('T', ' ').slice(0, 19) : ''));
      tr.appendChild(el('td', f.req_id, 'mono'));
      tr.appendChild(el('td', f.token || '(none)'));
      tr.appendChild(el('td', f.model));
      tr.appendChild(el('td', f.channel || '(none)'));
      tr.appendChild(el('td', f.status, Number(f.status) >= 400 ? 'bad' : ''));
      tr.appendChild(el('td', f.partial || '', f.partial ? 'bad' : ''));
      tr.appendChild(fieldCell('td', 'input', f.input));
      tr.appendChild(fieldCell('td', 'output', f.output));
      tr.appendChild(fieldCell('td', 'cost_nusd', f.cost_nusd));
      tbody.appendChild(tr);
    });
    if (!ev.events.length) {
      const tr = el('tr');
      const td = el('td', 'no request recorded yet', 'muted');
      td.colSpan = cols.length;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
  }

  function render(u, ev) {
    $('since').value = u.since;
    $('until').value = u.until;
    $('range-shown').textContent = 'From ' + u.since + ' to ' + u.until + ' (UTC days, inclusive); budgets as of ' +
      new Date(Number(u.now_ms)).toISOString().replace('T', ' ').slice(0, 19) + ' UTC.';
    totals(u.total);
    drawChart(u);
    countersTable($('t-day'), 'day', 'day', u.by_day);
    countersTable($('t-token'), 'token', 'token', u.by_token,
      { heads: ['budgets (this window)'], cells: budgetCells(u.budgets) });
    countersTable($('t-model'), 'model', 'model', u.by_model);
    countersTable($('t-channel'), 'channel', 'channel', u.by_channel);
    const note = $('budgets-note');
    note.hidden = !u.budgets_truncated;
    note.textContent = u.budgets_truncated ? 'Budgets are read for the first tokens only (by name).' : '';
    events(ev);
  }

  async function load() {
    const token = sessionStorage.getItem(KEY);
    if (!token) { wipe(); show('login'); return; }
    show('loading');
    const q = new URLSearchParams();
    if ($('since').value) q.set('since', $('since').value);
    if ($('until').value) q.set('until', $('until').value);
    try {
      const [u, ev] = await Promise.all([
        api('/api/admin/usage?' + q.toString(), token),
        api('/api/admin/events?count=50', token),
      ]);
      render(u, ev);
      show('ready');
    } catch (e) {
      wipe();
      if (e.status === 401 || e.status === 403) {
        sessionStorage.removeItem(KEY);
        show('login', 'Refused: ' + e.message);
      } else {
        show('error', 'The admin API answered an error, no data shown: ' + e.message);
      }
    }
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('cred').value.trim();
    $('cred').value = '';
    if (v) sessionStorage.setItem(KEY, v);
    load();
  });
  $('range').addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    wipe();
    show('login');
  });
  load();
})();
