// Exchange flows page: render the server-built Plotly figure, then merge live bar updates into it.
(function () {
  "use strict";
  const read = (id) => JSON.parse(document.getElementById(id).textContent);

  document.addEventListener("DOMContentLoaded", () => {
    const figure = JSON.parse(read("figure-data"));
    const config = read("live-config");
    const chart = document.getElementById("chart");
    // One row per (asset, exchange, hour): the key every update is merged by.
    const rows = new Map();
    const keyOf = (r) => `${r.asset}|${r.exchange}|${r.bucket_start}`;
    for (const r of read("flow-rows")) rows.set(keyOf(r), r);
    let updates = 0;

    const seriesRows = (series) => {
      const out = [];
      for (const r of rows.values()) if (`${r.asset}|${r.exchange}` === series) out.push(r);
      return out.sort((a, b) => (a.bucket_start < b.bucket_start ? -1 : a.bucket_start > b.bucket_start ? 1 : 0));
    };

    const redraw = () => {
      for (const trace of figure.data) {
        const meta = trace.meta || {};
        if (meta.series) {
          const list = seriesRows(meta.series);
          trace.x = list.map((r) => r.bucket_start);
          trace.y = list.map((r) => PW.num(r[meta.y]));
        } else if (meta.sum) {
          const totals = new Map();
          for (const series of meta.sum) {
            for (const r of seriesRows(series)) {
              if (r[meta.y] === null || r[meta.y] === undefined) continue;
              totals.set(r.bucket_start, (totals.get(r.bucket_start) || 0) + Number(r[meta.y]));
            }
          }
          trace.x = [...totals.keys()].sort();
          trace.y = trace.x.map((t) => totals.get(t));
          trace.marker = { ...(trace.marker || {}), color: trace.y.map((v) => (v >= 0 ? "#26a69a" : "#ef5350")) };
        }
      }
      // A panel's "no data" note goes once its trace has something to show.
      const filled = new Set(figure.data.filter((t) => t.meta && t.meta.note && (t.y || []).some((v) => v !== null))
        .map((t) => t.meta.note));
      if (figure.layout.annotations) {
        figure.layout.annotations = figure.layout.annotations.filter((a) => !filled.has(a.name));
      }
      if (PW.fitLayout) PW.fitLayout(chart, figure.layout, figure.data);
      Plotly.react(chart, figure.data, figure.layout, { responsive: true, displaylogo: false });
    };

    const merge = (bars) => {
      for (const bar of bars) rows.set(keyOf(bar), bar);
      // A live chart slides: drop hours older than the selected range behind the newest one.
      let newest = 0;
      for (const r of rows.values()) newest = Math.max(newest, Date.parse(r.bucket_start));
      for (const [key, r] of rows) if (Date.parse(r.bucket_start) < newest - config.rangeMs) rows.delete(key);
      redraw();
      updates += 1;
      chart.dataset.liveUpdates = String(updates);
      const empty = document.getElementById("empty-state");
      if (empty && bars.some((b) => b.asset === config.asset)) empty.remove();
    };

    const pendingTrace = () => figure.data.find((t) => t.meta && t.meta.pending);
    const mergePending = (pending) => {
      let trace = pendingTrace();
      if (!trace) return; // the server adds the pending trace when there is something pending at load
      trace.x = pending.map(() => config.nowHour);
      trace.y = pending.map((p) => p.inflow_float);
      trace.customdata = pending.map((p) => p.exchange);
    };

    redraw();
    chart.dataset.ready = "1";
    if (!config.live) {
      PW.showHistorical(document.getElementById("conn-status"));
      return;
    }
    PW.connect("/ws/flows/", {
      statusEl: document.getElementById("conn-status"),
      onOpen: ({ reconnected }) => { if (reconnected) location.reload(); },
      onMessage: (msg) => {
        if (msg.type !== "flows") return;
        const stable = msg.asset === "USDT" || msg.asset === "USDC";
        if (msg.asset === config.asset) {
          const shown = new Set([...config.exchanges, "all"]);
          if (msg.pending) mergePending(msg.pending);
          merge(msg.bars.filter((b) => shown.has(b.exchange) || (stable && b.exchange === "all")));
        } else if (stable) {
          merge(msg.bars.filter((b) => b.exchange === "all"));
        }
      },
    });
  });
})();
