// Starts ninja's bundled Swagger UI (templates/ninja/swagger.html) like ninja's own swagger-ui-init.js, without
// deep links: with them each operation's toggle button holds a link, a control nested in a control.
(function () {
  "use strict";
  const body = document.body.dataset;
  const config = JSON.parse(document.getElementById("swagger-settings").textContent);
  config.dom_id = "#swagger-ui";
  config.deepLinking = false;
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  if (body.apiCsrf && body.csrfToken) {
    config.requestInterceptor = (req) => {
      req.headers["X-CSRFToken"] = body.csrfToken;
      return req;
    };
  }
  window.ui = SwaggerUIBundle(config);
})();
