// The navigation menu on narrow screens: one button shows and hides it (aria-expanded); Escape closes it and
// returns focus to the button. The page arrives folded (data-menu="closed"); without scripts css/nojs.css keeps
// the navigation open.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const bar = document.getElementById("topbar");
    const button = document.getElementById("menu-toggle");
    if (!bar || !button) return;
    const isOpen = () => button.getAttribute("aria-expanded") === "true";
    const set = (open) => {
      bar.dataset.menu = open ? "open" : "closed";
      button.setAttribute("aria-expanded", String(open));
    };
    button.addEventListener("click", () => set(!isOpen()));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && isOpen()) {
        set(false);
        button.focus();
      }
    });
  });
})();
