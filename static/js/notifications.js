// Live alert toasts for a logged-in user over the private, authenticated WebSocket.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("toasts");
    if (!box || !window.PW) return;
    PW.connect("/ws/notifications/", {
      onMessage: (msg) => {
        if (msg.type !== "alert") return;
        const e = msg.event;
        const toast = document.createElement("div");
        toast.className = "toast";
        toast.setAttribute("role", "status");
        const title = document.createElement("strong");
        title.textContent = e.title;
        const body = document.createElement("div");
        // The server sends the instrument's full name (symbol, market type, exchange) and values in their units.
        const value = e.value_text || Number(e.value).toPrecision(4);
        const threshold = e.threshold_text || e.threshold;
        const what = [e.instrument, e.metric].filter(Boolean).join(": ");
        body.textContent = `${what} ${value} (threshold ${threshold}) · bar ${e.at.slice(11, 16)} UTC`;
        toast.append(title, body);
        if (e.url) {
          const link = document.createElement("a");
          link.href = e.url;
          link.textContent = "Open chart";
          toast.append(link);
        }
        box.prepend(toast);
        setTimeout(() => toast.remove(), 30000);
      },
    });
  });
})();
