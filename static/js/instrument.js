// Instrument page: render the server-built Plotly figure, then merge live bars into it.
(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);

  document.addEventListener("DOMContentLoaded", () => {
    const figure = JSON.parse(read("figure-data"));
    const config = read("live-config");
    const chart = document.getElementById("chart");
    const rows = read("bars-data");
    const byStart = new Map(rows.map((r, i) => [r.bucket_start, i]));
    let updates = 0;

    const recomputeCvd = () => {
      let run = 0;
      for (const r of rows) { run += Number(r.delta_base || 0); r.cvd_base = run; }
    };

    const redraw = () => {
      const x = rows.map((r) => r.bucket_start);
      for (const trace of figure.data) {
        const meta = trace.meta || {};
        trace.x = x;
        if (meta.kind === "ohlc") {
          for (const k of ["open", "high", "low", "close"]) trace[k] = rows.map((r) => PW.num(r[k]));
        } else if (meta.y) {
          const sign = meta.sign || 1;
          trace.y = rows.map((r) => (r[meta.y] === null || r[meta.y] === undefined ? null : sign * Number(r[meta.y])));
          if (trace.customdata) trace.customdata = rows.map((r) => PW.num(r[meta.y]));
        }
      }
      Plotly.react(chart, figure.data, figure.layout, { responsive: true, displaylogo: false });
      document.getElementById("bar-count").textContent = rows.length;
      const empty = document.getElementById("empty-state");
      if (empty && rows.length) empty.remove();
    };

    const merge = (bars) => {
      for (const bar of bars) {
        const at = byStart.get(bar.bucket_start);
        if (at === undefined) {
          rows.push(bar);
        } else {
          rows[at] = bar;
        }
      }
      rows.sort((a, b) => (a.bucket_start < b.bucket_start ? -1 : a.bucket_start > b.bucket_start ? 1 : 0));
      // A live chart slides: keep only the selected range behind the newest bar.
      if (config.live && rows.length) {
        const newest = Date.parse(rows[rows.length - 1].bucket_start);
        while (rows.length && Date.parse(rows[0].bucket_start) < newest - config.rangeMs) rows.shift();
      }
      byStart.clear();
      rows.forEach((r, i) => byStart.set(r.bucket_start, i));
      recomputeCvd();
      redraw();
      updates += 1;
      chart.dataset.liveUpdates = String(updates);
      if (rows.length) document.getElementById("last-update").textContent = rows[rows.length - 1].bucket_start;
    };

    const catchUp = async () => {
      // After a reconnect, fetch everything since the last bar we hold, so the chart has no gap.
      const since = rows.length ? rows[rows.length - 1].bucket_start : new Date(Date.now() - config.rangeMs).toISOString();
      try {
        const resp = await fetch(`${config.api}&start=${encodeURIComponent(since)}`);
        if (resp.ok) merge((await resp.json()).bars);
      } catch (e) { /* the next reconnect tries again */ }
    };

    redraw();
    chart.dataset.ready = "1";
    if (!config.live) {
      const status = document.getElementById("conn-status");
      status.dataset.state = "static";
      status.textContent = "historical range (not live)";
      return;
    }
    PW.connect(`/ws/instruments/${config.instrument}/`, {
      statusEl: document.getElementById("conn-status"),
      onOpen: ({ reconnected }) => { if (reconnected) catchUp(); },
      onMessage: (msg) => {
        if (msg.type === "bars" && msg.bars[config.interval]) merge(msg.bars[config.interval]);
      },
    });
  });
})();
