// Static figures: every element with data-figure draws the Plotly figure in the JSON script of that id.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    for (const el of document.querySelectorAll("[data-figure]")) {
      const figure = JSON.parse(JSON.parse(document.getElementById(el.dataset.figure).textContent));
      Plotly.newPlot(el, figure.data, figure.layout, { responsive: true, displaylogo: false });
      el.dataset.ready = "1";
    }
  });
})();
