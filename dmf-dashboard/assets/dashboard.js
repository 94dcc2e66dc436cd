// DMF dashboard page: reads the JSON API, follows GET /api/events (Server-Sent Events, read with
// fetch so the token can travel in a header), and drives runs, cancels and rollbacks.
// Every text from the server is put in the page as text (never as HTML).
'use strict';

(function () {
  const TOKEN_KEY = 'dmf-dashboard-token';
  const REJECT_SAMPLES = 5;

  const state = {
    migrations: [],          // GET /api/migrations
    runs: [],                // GET /api/runs
    detail: null,            // GET /api/runs/{id} of the run shown
    shownRun: null,          // the run shown (the newest unless one was picked)
    pickedRun: false,        // true once the user picked a run
    live: new Map(),         // migration name -> latest progress event of the newest run
    rejectsOffset: 0,
    rejects: [],
    rejectsNext: null,
    connected: false,
  };

  // ---------- small helpers ----------

  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));

  function fmtRate(rate) {
    if (!rate) return '–';
    return Math.round(rate).toLocaleString('en-US');
  }

  function fmtSeconds(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '–';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + String(s % 60).padStart(2, '0') + ' s';
    return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return ms + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    return fmtSeconds(ms / 1000);
  }

  function fmtTime(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // Status words and symbols, so a status reads without colour.
  const STATUS = {
    completed: ['✓', 'completed'],
    failed: ['✗', 'failed'],
    running: ['▶', 'running'],
    started: ['▶', 'running'],
    loading: ['▶', 'running'],
    preflight: ['…', 'pre-flight'],
    backup: ['…', 'backup'],
    cancelled: ['■', 'cancelled'],
    skipped: ['–', 'skipped'],
    pending: ['…', 'pending'],
    rolled_back: ['↺', 'rolled back'],
    never: ['○', 'never run'],
  };

  function badge(status) {
    const [symbol, word] = STATUS[status] || ['?', status];
    return h('span', { class: 'status status-' + status, 'data-status': status }, symbol + ' ' + word);
  }

  function written(counts) {
    return counts ? counts.inserted + counts.updated + counts.deleted : null;
  }

  // ---------- API ----------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  function headers(extra) {
    const all = Object.assign({ Accept: 'application/json' }, extra || {});
    if (token()) all.Authorization = 'Bearer ' + token();
    return all;
  }

  async function api(path, options) {
    const opts = Object.assign({ cache: 'no-store' }, options || {});
    opts.headers = headers(opts.headers);
    const response = await fetch(path, opts);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error : 'HTTP ' + response.status;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function post(path, body) {
    return api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
  }

  // ---------- notices ----------

  let noticeTimer = null;

  function notice(message, kind) {
    const el = $('notice');
    el.textContent = message;
    el.className = 'notice' + (kind === 'info' ? ' info' : '');
    el.hidden = false;
    clearTimeout(noticeTimer);
    if (kind === 'info') noticeTimer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  function explain(error) {
    if (error.status === 401 && !token()) {
      notice('This needs the dashboard token: enter it in the Token field (it was printed when the dashboard started, or set in DMF_DASHBOARD_TOKEN).');
      $('token').focus();
    } else if (error.status === 403) {
      notice('The token was refused: ' + error.message);
      $('token').focus();
    } else {
      notice(error.message);
    }
  }

  // ---------- loading ----------

  async function loadInfo() {
    try {
      const info = await api('api/info');
      document.title = info.title;
      $('title').textContent = info.title;
      const list = $('databases');
      list.replaceChildren(...info.databases.map((db) => h('li', { title: db.role + ': ' + db.name }, db.role + ': ', h('b', { text: db.name }))));
    } catch (error) {
      if (error.status === 401 || error.status === 403) explain(error);
    }
  }

  async function loadMigrations() {
    const body = await api('api/migrations');
    state.migrations = body.migrations;
    renderMigrations();
  }

  async function loadRuns() {
    const body = await api('api/runs?limit=30');
    state.runs = body.runs;
    if (!state.pickedRun || !state.runs.some((r) => r.id === state.shownRun)) {
      state.shownRun = state.runs.length ? state.runs[0].id : null;
    }
    renderRuns();
  }

  async function loadDetail() {
    if (state.shownRun === null) {
      state.detail = null;
      renderRun();
      return;
    }
    const id = state.shownRun;
    const detail = await api('api/runs/' + id);
    const rejects = await api('api/runs/' + id + '/rejects?limit=' + REJECT_SAMPLES);
    if (id !== state.shownRun) return;
    state.detail = detail;
    state.rejects = rejects.rejects;
    state.rejectsNext = rejects.next_offset;
    renderRun();
  }

  let refreshing = null;
  let refreshAgain = false;

  // Reloads everything; calls made while one is under way fold into one more.
  async function refresh() {
    if (refreshing) { refreshAgain = true; return refreshing; }
    refreshing = (async () => {
      try {
        await Promise.all([loadMigrations(), loadRuns()]);
        await loadDetail();
      } catch (error) {
        explain(error);
      }
    })();
    await refreshing;
    refreshing = null;
    if (refreshAgain) { refreshAgain = false; return refresh(); }
  }

  let refreshTimer = null;
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 250);
  }

  // ---------- migrations table ----------

  // Where a migration stands: live progress when it is newer than the stored record.
  function standing(migration) {
    const latest = migration.latest;
    const live = state.live.get(migration.name) || migration.progress;
    // A skip (already completed, or a dependency did not complete) changes nothing the
    // migration did: its latest record still tells where it stands, and the run shows why.
    const useLive = live && (!latest || live.run >= latest.run) &&
      !(latest && live.phase === 'skipped') &&
      !(latest && latest.run === live.run && latest.status === 'rolled_back');
    if (useLive) {
      const status = { started: 'running', loading: 'running' }[live.phase] || live.phase;
      return {
        status: status === 'completed' && latest && latest.run === live.run ? latest.status : status,
        run: live.run,
        done: live.rows_done,
        estimated: live.rows_estimated,
        percent: live.percent,
        rate: live.rows_per_sec,
        eta: live.eta_seconds,
        counts: latest && latest.run === live.run && latest.status !== 'running' ? latest.counts : live.counts,
        error: latest && latest.run === live.run ? latest.error : live.message,
      };
    }
    if (!latest) return { status: 'never', done: 0, estimated: null, percent: null, rate: 0, eta: null, counts: null, error: null };
    const completed = latest.status === 'completed';
    return {
      status: latest.status,
      run: latest.run,
      done: latest.counts.read,
      estimated: completed ? latest.counts.read : null,
      percent: completed ? 100 : null,
      rate: latest.duration_ms > 0 ? latest.counts.read / (latest.duration_ms / 1000) : 0,
      eta: completed ? 0 : null,
      counts: latest.counts,
      error: latest.error,
    };
  }

  function progressBar(s) {
    const running = s.status === 'running';
    const percent = s.percent === null || s.percent === undefined ? null : Math.min(100, Math.max(0, s.percent));
    const fill = h('div', { class: 'bar-fill' });
    if (percent === null) {
      if (running) fill.classList.add('unknown');
    } else {
      fill.style.width = percent.toFixed(1) + '%';
      if (s.status === 'completed') fill.classList.add('done');
      if (s.status === 'failed' || s.status === 'cancelled') fill.classList.add('failed');
    }
    const shownPercent = percent === null ? null : Math.floor(percent);
    let text;
    if (s.estimated !== null && s.estimated !== undefined) {
      text = fmt(s.done) + ' / ' + fmt(s.estimated) + ' rows';
    } else {
      text = fmt(s.done) + ' rows';
    }
    if (shownPercent !== null) text += ' · ' + shownPercent + ' %';
    return h('div', { class: 'bar' },
      h('div', {
        class: 'bar-track', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
        'aria-valuenow': shownPercent === null ? null : shownPercent, 'aria-label': 'progress',
      }, fill),
      h('span', { class: 'bar-text' }, text));
  }

  function renderMigrations() {
    const body = $('migrations').tBodies[0];
    if (!state.migrations.length) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'No migration is registered.')));
      return;
    }
    body.replaceChildren(...state.migrations.map((m) => {
      const s = standing(m);
      const percent = s.percent === null || s.percent === undefined ? '' : Math.floor(s.percent);
      const running = s.status === 'running';
      return h('tr', { 'data-migration': m.name, 'data-status': s.status, 'data-percent': percent },
        h('td', {}, h('span', { class: 'name', text: m.name }),
          m.description ? h('span', { class: 'description', text: m.description }) : null),
        h('td', {}, badge(s.status)),
        h('td', {}, progressBar(s)),
        h('td', { class: 'num' }, running || s.status === 'completed' ? fmtRate(s.rate) : '–'),
        h('td', { class: 'num' }, running ? fmtSeconds(s.eta) : (s.status === 'completed' ? 'done' : '–')),
        h('td', { class: 'num' }, s.counts ? fmt(s.counts.read) : '–'),
        h('td', { class: 'num' }, s.counts ? fmt(written(s.counts)) : '–'),
        h('td', { class: 'num' }, s.counts ? fmt(s.counts.rejected) : '–'),
        h('td', {}, h('div', { class: 'row-actions' },
          h('button', {
            type: 'button', class: 'small', title: 'Run ' + m.name + ' (and nothing else)',
            onclick: () => startRun([m.name]),
          }, '▶ Run'),
          h('button', {
            type: 'button', class: 'small danger', title: 'Undo what the latest run of ' + m.name + ' wrote',
            disabled: !m.latest || running, onclick: () => rollback(m.name),
          }, '↺ Roll back'))));
    }));
  }

  // ---------- the run shown ----------

  function errorChain(text, muted) {
    const lines = String(text).split('\n');
    // The first line is the error; each `caused by:` line below it is indented.
    return h('div', { class: 'error-chain' + (muted ? ' muted' : '') },
      lines.map((line, i) => h('span', { class: i === 0 ? 'first' : 'cause', text: line })));
  }

  function renderRun() {
    const detail = state.detail;
    const summary = $('run-summary');
    const cancel = $('cancel-run');
    if (!detail) {
      $('run-heading').textContent = 'Run';
      summary.replaceChildren(h('p', { class: 'empty' }, 'No run yet. Press “Run all” to start one.'));
      $('run-errors').replaceChildren();
      $('rejects').replaceChildren();
      cancel.hidden = true;
      return;
    }
    const run = detail.run;
    $('run-heading').textContent = 'Run ' + run.id;
    cancel.hidden = !run.cancellable;
    const t = run.totals;
    summary.replaceChildren(
      badge(run.status),
      h('span', { class: 'fact' }, 'started ', h('b', { text: fmtTime(run.started_at) })),
      h('span', { class: 'fact' }, run.finished_at ? 'took ' : 'running for ', h('b', { text: fmtDuration(run.duration_ms) })),
      h('span', { class: 'fact' }, 'host ', h('b', { text: run.host })),
      run.in_process ? h('span', { class: 'fact' }, 'in this process') : null,
      h('ul', { class: 'counts', id: 'run-totals', 'data-run': run.id, 'aria-label': 'Run totals' },
        [['read', t.read], ['inserted', t.inserted], ['updated', t.updated], ['unchanged', t.unchanged],
          ['deleted', t.deleted], ['skipped', t.skipped], ['rejected', t.rejected]]
          .map(([label, n]) => h('li', { 'data-count': label }, h('b', { text: fmt(n) }), ' ' + label))));

    // Errors: the run's, then each migration's, with their chains.
    const errors = [];
    // The run's error usually repeats its failed migration's: show it once.
    const repeated = detail.migrations.some((record) => record.error === run.error);
    if (run.error && !repeated) errors.push(h('h3', {}, 'Run error'), errorChain(run.error));
    for (const record of detail.migrations) {
      if (!record.error) continue;
      const muted = record.status === 'skipped';
      errors.push(h('h3', {}, record.migration + ' ', badge(record.status)), errorChain(record.error, muted));
    }
    $('run-errors').replaceChildren(...errors);
    renderRejects();
  }

  function renderRejects() {
    const detail = state.detail;
    const box = $('rejects');
    if (!detail || detail.rejects.total === 0) {
      box.replaceChildren(detail ? h('h3', {}, 'Rejects: none') : '');
      return;
    }
    const summary = detail.rejects;
    const lines = Object.entries(summary.by_migration).map(([name, m]) =>
      h('li', {}, h('b', { text: name }), ': ' + fmt(m.total) + ' (' +
        Object.entries(m.by_stage).map(([stage, n]) => stage + ' ' + fmt(n)).join(', ') + ')'));
    const rows = state.rejects.map((r) => h('tr', {},
      h('td', { text: r.migration }),
      h('td', { text: r.stage }),
      h('td', { class: 'num', text: r.key }),
      h('td', { text: r.reason }),
      h('td', { class: 'payload', text: JSON.stringify(r.payload) })));
    box.replaceChildren(
      h('h3', {}, 'Rejects: ' + fmt(summary.total) + (summary.complete ? '' : '+')),
      h('ul', { class: 'rejects-summary' }, lines),
      h('table', { class: 'grid', id: 'reject-samples' },
        h('thead', {}, h('tr', {}, ['Migration', 'Stage', 'Key', 'Reason', 'Row'].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, rows)),
      state.rejectsNext !== null
        ? h('p', {}, h('button', { type: 'button', class: 'small', onclick: moreRejects }, 'Show more rejects'))
        : null);
  }

  async function moreRejects() {
    const id = state.shownRun;
    try {
      const page = await api('api/runs/' + id + '/rejects?limit=50&offset=' + state.rejectsNext);
      if (id !== state.shownRun) return;
      state.rejects = state.rejects.concat(page.rejects);
      state.rejectsNext = page.next_offset;
      renderRejects();
    } catch (error) {
      explain(error);
    }
  }

  // ---------- runs table ----------

  function renderRuns() {
    const body = $('runs').tBodies[0];
    if (!state.runs.length) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No run recorded yet.')));
      return;
    }
    body.replaceChildren(...state.runs.map((run) => h('tr', {
      class: run.id === state.shownRun ? 'selected' : null, 'data-run': run.id, 'data-status': run.status,
    },
    h('td', {}, h('button', {
      type: 'button', class: 'run-link', 'aria-label': 'Show run ' + run.id,
      onclick: () => { state.shownRun = run.id; state.pickedRun = run.id !== (state.runs[0] || {}).id; renderRuns(); loadDetail().catch(explain); },
    }, '#' + run.id)),
    h('td', {}, badge(run.status)),
    h('td', { text: fmtTime(run.started_at) }),
    h('td', { class: 'num', text: fmtDuration(run.duration_ms) }),
    h('td', { text: run.plan.join(', ') }),
    h('td', { class: 'num', text: fmt(run.totals.read) }),
    h('td', { class: 'num', text: fmt(run.totals.rejected) }),
    h('td', { text: run.host }))));
  }

  // ---------- actions ----------

  function needToken() {
    if (token()) return false;
    notice('Running, cancelling and rolling back need the dashboard token: enter it in the Token field (it was printed when the dashboard started, or set in DMF_DASHBOARD_TOKEN).');
    $('token').focus();
    return true;
  }

  async function startRun(migrations) {
    if (needToken()) return;
    const body = { force: $('force').checked };
    if (migrations) body.migrations = migrations;
    try {
      const started = await post('api/runs', body);
      state.shownRun = started.run;
      state.pickedRun = false;
      notice('Run ' + started.run + ' started.', 'info');
      refreshSoon();
    } catch (error) {
      explain(error);
    }
  }

  async function cancelRun() {
    if (needToken() || state.shownRun === null) return;
    try {
      const answer = await post('api/runs/' + state.shownRun + '/cancel');
      notice(answer.message, 'info');
      refreshSoon();
    } catch (error) {
      explain(error);
    }
  }

  async function rollback(name) {
    if (needToken()) return;
    const sure = window.confirm('Roll back migration “' + name + '”?\n\nThis undoes what its latest run wrote to the target.');
    if (!sure) return;
    try {
      const answer = await post('api/migrations/' + encodeURIComponent(name) + '/rollback');
      const undone = answer.undone.map((u) => u.migration + ' (run ' + u.run + '): ' + fmt(u.deleted) + ' deleted, ' + fmt(u.restored) + ' restored');
      notice('Rolled back ' + (undone.join('; ') || 'nothing'), 'info');
      state.live.delete(name);
      refreshSoon();
    } catch (error) {
      explain(error);
    }
  }

  // ---------- live events ----------

  function setConnection(connected, text) {
    state.connected = connected;
    const el = $('connection');
    el.dataset.state = connected ? 'live' : 'offline';
    el.textContent = text || (connected ? '● live' : '○ reconnecting…');
  }

  function onProgress(event) {
    if (event.migration === null) {
      if (event.phase === 'preflight') {
        // A new run: show it, and start its bars from zero.
        if (!state.pickedRun) state.shownRun = event.run;
      }
      refreshSoon();
      return;
    }
    const previous = state.live.get(event.migration);
    if (!previous || event.run >= previous.run) {
      if (previous && previous.run === event.run && event.rows_estimated === null) {
        event.rows_estimated = previous.rows_estimated;
      }
      state.live.set(event.migration, event);
    }
    renderMigrations();
    if (event.phase !== 'loading') refreshSoon();
  }

  function handleSse(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch (_) { return; }
    if (name === 'ready') refreshSoon();
    else if (name === 'progress') onProgress(payload);
    else if (name === 'lagged') refreshSoon();
  }

  async function follow() {
    for (;;) {
      try {
        const response = await fetch('api/events', { headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store' });
        if (response.status === 401 || response.status === 403) {
          setConnection(false, '○ live updates need the token');
          await new Promise((resolve) => window.addEventListener('dmf-token', resolve, { once: true }));
          continue;
        }
        if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
        setConnection(true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            handleSse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (_) {
        // Reconnect below.
      }
      setConnection(false);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      refreshSoon();
    }
  }

  // ---------- start ----------

  function start() {
    $('token').value = token();
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('token').value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
      $('notice').hidden = true;
      window.dispatchEvent(new Event('dmf-token'));
      loadInfo();
      refresh();
    });
    $('run-all').addEventListener('click', () => startRun(null));
    $('cancel-run').addEventListener('click', cancelRun);
    loadInfo();
    refresh();
    follow();
    // Durations of running runs, and a fallback when the stream is down.
    setInterval(() => {
      const running = state.runs.some((r) => r.status === 'running');
      if (!state.connected || running) refresh();
    }, 5000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
