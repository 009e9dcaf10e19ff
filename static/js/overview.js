// Overview: draw sparklines and update each instrument's row live.
(function () {
  "use strict";
  const fmt = {
    bucket_start: (v) => v.slice(0, 16).replace("T", " ") + " UTC",
    close: (v, row) => Number(v).toLocaleString("en-US", { maximumFractionDigits: 2 }) + " " + row.dataset.quote,
    taker_sell_ratio: (v) => (v === null ? "–" : Math.round(v * 100) + "%"),
    delta_base: (v, row) => Number(v).toFixed(4) + " " + row.dataset.base,
    spread_bps: (v) => (v === null ? "–" : Number(v).toFixed(3) + " bps"),
    imbalance_0_5pct: (v) => (v === null ? "–" : Number(v).toFixed(3)),
  };
  document.addEventListener("DOMContentLoaded", () => {
    const figures = new Map();
    document.querySelectorAll(".sparkline").forEach((el) => {
      const fig = JSON.parse(JSON.parse(document.getElementById(el.dataset.figureId).textContent));
      figures.set(el, fig);
      Plotly.newPlot(el, fig.data, fig.layout, { staticPlot: true, displayModeBar: false });
    });
    PW.connect("/ws/overview/", {
      statusEl: document.getElementById("conn-status"),
      onMessage: (msg) => {
        if (msg.type !== "bars" || !msg.bars["1m"]) return;
        const row = document.querySelector(`tr[data-instrument="${msg.instrument}"]`);
        if (!row) return;
        const bar = msg.bars["1m"][msg.bars["1m"].length - 1];
        for (const [field, render] of Object.entries(fmt)) {
          const cell = row.querySelector(`[data-field="${field}"]`);
          if (cell && bar[field] !== undefined) cell.textContent = render(bar[field], row);
        }
        const el = row.querySelector(".sparkline");
        const fig = el && figures.get(el);
        if (fig && bar.close !== null) {
          const t = fig.data[0];
          const i = t.x.indexOf(bar.bucket_start);
          if (i >= 0) t.y[i] = Number(bar.close); else { t.x.push(bar.bucket_start); t.y.push(Number(bar.close)); }
          if (t.x.length > 60) { t.x.shift(); t.y.shift(); }
          Plotly.react(el, fig.data, fig.layout, { staticPlot: true, displayModeBar: false });
        }
        row.classList.add("flash");
        setTimeout(() => row.classList.remove("flash"), 400);
      },
    });
  });
})();
