/*
 * The training-job page: live curves, sample completions, log and status over a WebSocket.
 *
 * The server sends a `snapshot` first (every metric row so far), then one `metric` event per step,
 * `samples`, `log`, `status`, `checkpoint`, `resumed` and `ranks` events (webapp/registry/events.py).
 * Curves are Chart.js line charts keyed by step; a resumed job's run drops the points after the
 * step it goes on from (`resumed`), and a step that arrives again replaces the points from that
 * step on. Model output is inserted with textContent only, never as HTML. The socket reconnects with back-off and the
 * snapshot makes a reconnect lossless. The ranks table (a process group's heartbeats) keeps each
 * rank's age as the server measured it plus the time since it arrived (the browser's clock need
 * not agree with the server's), ticking every second; a running rank turns stale past the server's
 * threshold, and every rank shows exited once the job is over.
 */
(function () {
  "use strict";

  const chartSpecs = JSON.parse(document.getElementById("job-charts").textContent);
  const config = JSON.parse(document.getElementById("job-config").textContent);
  const palette = ["#3440c9", "#c93470", "#0f7a3a", "#8a5a00", "#5a2ca0"];
  const terminal = new Set(["succeeded", "failed", "cancelled"]);
  const maxSamples = 12;
  const maxLogLines = 400;
  const charts = {};
  let lastStatus = document.getElementById("job-status")?.dataset.status || "";

  // Accuracy bars take their length from data-value: a style attribute in the page would need
  // 'unsafe-inline' in the Content-Security-Policy, a property set from script does not.
  function fillBars(root) {
    const scope = root && root.querySelectorAll ? root : document;
    for (const bar of scope.querySelectorAll(".bar[data-value]")) {
      bar.style.setProperty("--value", bar.dataset.value);
    }
  }
  fillBars(document);
  document.addEventListener("htmx:load", (event) => fillBars(event.target));

  function makeChart(spec) {
    const canvas = document.getElementById("chart-" + spec.id);
    if (!canvas || typeof Chart === "undefined") return null;
    return new Chart(canvas, {
      type: "line",
      data: {
        datasets: spec.series.map((series, index) => ({
          label: series.label,
          data: [],
          borderColor: palette[index % palette.length],
          backgroundColor: palette[index % palette.length],
          borderWidth: 2,
          pointRadius: 2,
          tension: 0,
        })),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "step" }, ticks: { precision: 0 } },
          // A [low, high] range is a suggestion: the axis still grows if a value leaves it.
          y: spec.range
            ? { suggestedMin: spec.range[0], suggestedMax: spec.range[1] }
            : { beginAtZero: spec.beginAtZero === true },
        },
        plugins: { legend: { display: spec.series.length > 1, position: "bottom" } },
      },
    });
  }

  for (const spec of chartSpecs) {
    charts[spec.id] = { spec: spec, chart: makeChart(spec) };
  }

  function addMetric(step, metrics, redraw) {
    for (const id in charts) {
      const entry = charts[id];
      if (!entry.chart) continue;
      entry.spec.series.forEach((series, index) => {
        const value = metrics[series.key];
        if (typeof value !== "number" || !isFinite(value)) return;
        const data = entry.chart.data.datasets[index].data;
        // A resumed job re-runs the steps after its checkpoint: drop points from `step` on.
        while (data.length && data[data.length - 1].x >= step) data.pop();
        data.push({ x: step, y: value });
      });
      if (redraw) entry.chart.update("none");
    }
  }

  // A new run goes on after `step`: later points and samples came from a run that died before
  // its next checkpoint (the server deleted them; they are trained again).
  function dropStepsAfter(step) {
    for (const id in charts) {
      const entry = charts[id];
      if (!entry.chart) continue;
      entry.chart.data.datasets.forEach((dataset) => {
        dataset.data = dataset.data.filter((point) => point.x <= step);
      });
      entry.chart.update("none");
    }
    document.querySelectorAll("#samples .sample").forEach((item) => {
      if (Number(item.dataset.step) > step) item.remove();
    });
    showSamples([], false); // "No samples yet." if none is left
  }

  function resetCharts() {
    for (const id in charts) {
      const entry = charts[id];
      if (!entry.chart) continue;
      entry.chart.data.datasets.forEach((dataset) => (dataset.data = []));
    }
  }

  function redrawAll() {
    for (const id in charts) if (charts[id].chart) charts[id].chart.update("none");
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  function refreshPart(part) {
    if (typeof htmx === "undefined") return;
    htmx.ajax("GET", window.location.pathname + "?part=" + part, {
      target: "#" + part,
      swap: "outerHTML",
    });
  }

  function applyStatus(status) {
    const badge = document.getElementById("job-status");
    if (badge) {
      badge.textContent = status.status_label || status.status;
      badge.className = "state state-" + status.status;
      badge.dataset.status = status.status;
    }
    setText("job-step", String(status.current_step));
    setText(
      "job-checkpoint",
      status.last_checkpoint_step === null ? "none" : String(status.last_checkpoint_step)
    );
    const progress = document.getElementById("job-progress");
    if (progress) {
      progress.max = Math.max(status.total_steps, 1);
      progress.value = status.current_step;
    }
    const error = document.getElementById("job-error");
    if (error) {
      error.textContent = status.error || "";
      error.hidden = !status.error;
    }
    const shown = document.getElementById("controls")?.dataset.jobStatus;
    if (status.status !== lastStatus || (shown && shown !== status.status)) {
      // Buttons depend on the status (cancel while queued or running, resume after a failure):
      // the server redraws them for every change, so none outlives the state it belongs to.
      refreshPart("controls");
      if (terminal.has(status.status) || terminal.has(lastStatus)) refreshPart("problems");
    }
    lastStatus = status.status;
    if (rankRows.length) renderRanks();
    if (terminal.has(status.status)) {
      // Nothing more will come: say so instead of "live", and stop the socket.
      finished = true;
      setText("live-state", "finished (" + (status.status_label || status.status).toLowerCase() + ")");
      if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "job finished");
    }
  }

  function sampleItem(sample) {
    const item = document.createElement("li");
    item.className = "sample " + (sample.reward > 0 ? "reward-ok" : "reward-bad");
    item.dataset.step = String(sample.step);
    const meta = document.createElement("div");
    meta.className = "sample-meta";
    meta.textContent = "step " + sample.step + " · reward " + Number(sample.reward).toPrecision(2);
    const prompt = document.createElement("div");
    prompt.className = "sample-prompt";
    prompt.textContent = sample.prompt;
    const completion = document.createElement("pre");
    completion.className = "sample-completion";
    completion.textContent = sample.completion;
    item.append(meta, prompt, completion);
    return item;
  }

  function showSamples(samples, replace) {
    const list = document.getElementById("samples");
    if (!list) return;
    if (replace) list.replaceChildren();
    list.querySelector(".empty")?.remove();
    for (const sample of samples) list.prepend(sampleItem(sample));
    if (!list.children.length) {
      const empty = document.createElement("li");
      empty.className = "muted empty";
      empty.textContent = "No samples yet.";
      list.append(empty);
    }
    while (list.children.length > maxSamples) list.lastElementChild.remove();
  }

  function appendLog(lines, replace) {
    const log = document.getElementById("job-log");
    if (!log) return;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    const existing = replace ? [] : log.textContent.split("\n").filter((l) => l.length);
    const kept = existing.concat(lines).slice(-maxLogLines);
    log.textContent = kept.join("\n");
    if (atBottom || replace) log.scrollTop = log.scrollHeight;
  }

  let rankRows = [];
  let rankStaleAfter = 15;
  let rankReceived = 0;

  function rankState(row, age) {
    if (row.state === "exited" || terminal.has(lastStatus)) return "exited";
    if (age === null) return "stale";
    return age > rankStaleAfter ? "stale" : "alive";
  }

  function rankCell(text, className) {
    const cell = document.createElement("td");
    if (className) cell.className = className;
    cell.textContent = text;
    return cell;
  }

  function renderRanks() {
    const body = document.getElementById("rank-rows");
    const section = document.getElementById("ranks");
    if (!body || !section) return;
    const elapsed = (performance.now() - rankReceived) / 1000;
    body.replaceChildren(
      ...rankRows.map((row) => {
        const age = row.age_seconds === null ? null : row.age_seconds + elapsed;
        const state = rankState(row, age);
        const tr = document.createElement("tr");
        tr.dataset.rank = String(row.rank);
        const badge = document.createElement("span");
        badge.className = "state state-" + state;
        badge.textContent = state;
        const stateCell = document.createElement("td");
        stateCell.append(badge);
        tr.append(
          rankCell(String(row.rank)),
          rankCell(row.host),
          rankCell(String(row.pid)),
          rankCell(age === null ? "–" : Math.round(age) + " s ago", "rank-age"),
          stateCell
        );
        return tr;
      })
    );
    section.hidden = rankRows.length === 0;
  }

  function showRanks(rows, staleAfter) {
    rankRows = rows || [];
    if (typeof staleAfter === "number") rankStaleAfter = staleAfter;
    rankReceived = performance.now();
    renderRanks();
  }
  window.setInterval(() => {
    if (rankRows.length) renderRanks();
  }, 1000);

  const handlers = {
    snapshot(event) {
      showRanks(event.ranks, event.stale_after_seconds);
      resetCharts();
      for (const row of event.metrics) addMetric(row.step, row, false);
      redrawAll();
      applyStatus(event.job);
      showSamples(event.samples.slice().reverse(), true);
      appendLog(event.log ? event.log.split("\n") : [], true);
    },
    metric(event) {
      addMetric(event.step, event.metrics, true);
    },
    status(event) {
      applyStatus(event);
    },
    samples(event) {
      showSamples(event.samples, false);
    },
    log(event) {
      const stamp = new Date().toTimeString().slice(0, 8);
      appendLog(event.lines.map((line) => stamp + " " + line), false);
    },
    checkpoint() {
      refreshPart("checkpoints");
    },
    resumed(event) {
      dropStepsAfter(event.step);
    },
    ranks(event) {
      showRanks(event.ranks, event.stale_after_seconds);
    },
  };

  let retryDelay = 1000;
  let socket = null;
  let finished = false;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + config.wsPath);
    if (!finished) setText("live-state", "connecting…");
    socket.addEventListener("open", () => {
      retryDelay = 1000;
      if (!finished) setText("live-state", "live");
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      const handler = handlers[event.type];
      if (handler) handler(event);
    });
    socket.addEventListener("close", (close) => {
      if (finished) return;
      if (close.code === 4401 || close.code === 4403 || close.code === 4404) {
        setText("live-state", "not available (" + close.code + ")");
        return;
      }
      setText("live-state", "reconnecting…");
      window.setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    });
  }

  document.body.dataset.jobPage = "ready";
  connect();
})();
