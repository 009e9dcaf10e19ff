// Derivatives panel: fetches the figure for each .derivatives-chart and refreshes it periodically.
// No inline scripts (CSP): the URL and refresh period come from data attributes.
(function () {
  "use strict";

  function render(el) {
    const url = el.dataset.seriesUrl;
    if (!url || typeof Plotly === "undefined") return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) { return resp.ok ? resp.json() : Promise.reject(resp.status); })
      .then(function (payload) {
        // Plotly.react keeps the user's zoom (layout.uirevision) while swapping in fresh data.
        if (window.PW && PW.fitLayout) PW.fitLayout(el, payload.figure.layout, payload.figure.data);
        Plotly.react(el, payload.figure.data, payload.figure.layout, { responsive: true, displaylogo: false });
      })
      .catch(function (err) { el.dataset.error = String(err); });
  }

  function start() {
    document.querySelectorAll(".derivatives-chart").forEach(function (el) {
      render(el);
      const seconds = parseInt(el.dataset.refreshSeconds || "30", 10);
      if (seconds > 0) window.setInterval(function () { if (!document.hidden) render(el); }, seconds * 1000);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
