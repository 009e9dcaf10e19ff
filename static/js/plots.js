// Charts that fit the screen: on a narrow one the legend moves below the plot (never over the data), the side
// margins shrink and the chart grows by the legend's height. Pages call PW.fitLayout(el, layout, data) before every
// Plotly.react; charts they fitted follow the window across the breakpoint.
(function () {
  "use strict";
  const PW = (window.PW = window.PW || {});
  const NARROW = 640;
  const wide = new WeakMap(); // el -> the layout's own legend, margin and height
  const fitted = new Set();

  PW.fitLayout = (el, layout, data) => {
    if (!wide.has(el)) wide.set(el, { legend: layout.legend, margin: layout.margin, height: layout.height });
    fitted.add(el);
    const own = wide.get(el);
    const width = el.clientWidth || window.innerWidth;
    if (width >= NARROW) return Object.assign(layout, own);
    const entries = (data || el.data || []).filter((t) => t.showlegend !== false).length || 8;
    const perRow = Math.max(1, Math.floor(width / 140));
    const legendPx = Math.ceil(entries / perRow) * 19 + 10;
    const height = (own.height || 450) + legendPx;
    const margin = { ...(own.margin || {}), l: 46, r: 10 };
    // Below the bottom axis (its tick labels and title, about 80 px), in the plot area's own units.
    const plotPx = height - (margin.t || 80) - (margin.b || 80);
    return Object.assign(layout, {
      height, margin,
      legend: { ...(own.legend || {}), orientation: "h", x: 0, xanchor: "left", y: -80 / plotPx, yanchor: "top",
        font: { size: 10 } },
    });
  };

  let timer = null;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      for (const el of fitted) {
        if (!el.isConnected || !el.layout || typeof Plotly === "undefined") continue;
        const layout = PW.fitLayout(el, { ...el.layout });
        Plotly.relayout(el, { height: layout.height, margin: layout.margin, legend: layout.legend });
      }
    }, 200);
  });
})();
