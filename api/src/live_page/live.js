// The live page: follows /v1/campaigns/{id}/events and shows what it says. No build
// step and no dependencies; the server embeds this file.
(() => {
  "use strict";
  const main = document.getElementById("live");
  const text = main.dataset;
  const el = (id) => document.getElementById(id);
  const number = new Intl.NumberFormat(text.locale);
  // (time in ms, issued) as events arrived, for the last minute's chart: at most one a
  // second (the last of that second), so at most about sixty whatever the interval.
  const samples = [];
  const CHART_SECONDS = 60;
  let retryMs = 1000;

  function show(view) {
    el("name").textContent = view.name;
    document.title = view.name;
    el("remaining").textContent = number.format(view.remaining);
    el("issued").textContent = number.format(view.issued);
    el("total").textContent = number.format(view.total_stock);
    const percent = view.total_stock ? Math.round((100 * view.issued) / view.total_stock) : 0;
    el("bar-fill").style.width = percent + "%";
    el("bar").setAttribute("aria-valuenow", String(percent));
    setStatus(view.status);
    const now = Date.now();
    const last = samples[samples.length - 1];
    if (last && Math.floor(last[0] / 1000) === Math.floor(now / 1000)) {
      last[0] = now;
      last[1] = view.issued;
    } else {
      samples.push([now, view.issued]);
    }
    while (samples.length > 2 && samples[1][0] < now - (CHART_SECONDS + 1) * 1000) {
      samples.shift();
    }
    draw();
  }

  function setStatus(status) {
    const s = el("status");
    s.dataset.status = status;
    // An attribute, not `dataset`: that would camel-case `status-sold_out`.
    s.textContent = main.getAttribute("data-status-" + status) || status;
  }

  // Issued at time t: the count of the last sample at or before it.
  function issuedAt(t) {
    let n = samples.length ? samples[0][1] : 0;
    for (const [at, issued] of samples) {
      if (at > t) break;
      n = issued;
    }
    return n;
  }

  function draw() {
    const canvas = el("chart");
    const ctx = canvas.getContext("2d");
    const now = Date.now();
    const perSecond = [];
    for (let i = CHART_SECONDS; i > 0; i--) {
      const end = now - (i - 1) * 1000;
      perSecond.push(Math.max(0, issuedAt(end) - issuedAt(end - 1000)));
    }
    const max = Math.max(1, ...perSecond);
    const w = canvas.width / CHART_SECONDS;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent") || "#e4572e";
    perSecond.forEach((n, i) => {
      const h = (n / max) * (canvas.height - 4);
      ctx.fillRect(i * w + 1, canvas.height - h, w - 2, h);
    });
  }

  function connect() {
    const source = new EventSource(text.events);
    source.addEventListener("open", () => {
      retryMs = 1000;
      el("connection").textContent = text.live;
    });
    source.addEventListener("campaign", (e) => show(JSON.parse(e.data)));
    source.addEventListener("deleted", () => {
      setStatus("deleted");
      source.close();
    });
    source.addEventListener("error", () => {
      el("connection").textContent = text.reconnecting;
      // EventSource retries by itself unless the answer was not a stream. A 404 means
      // the campaign is gone (its `deleted` event was missed) or the streams are off:
      // stop. Anything else (a restart answering 503, say): retry, backing off to 30 s.
      if (source.readyState === EventSource.CLOSED) {
        fetch(text.events, { method: "GET" })
          .then((answer) => {
            if (answer.status === 404) {
              setStatus("deleted");
              el("connection").textContent = "";
              return;
            }
            if (answer.body) answer.body.cancel();
            setTimeout(connect, retryMs);
            retryMs = Math.min(retryMs * 2, 30000);
          })
          .catch(() => {
            setTimeout(connect, retryMs);
            retryMs = Math.min(retryMs * 2, 30000);
          });
      }
    });
  }

  setInterval(draw, 1000);
  connect();
})();
