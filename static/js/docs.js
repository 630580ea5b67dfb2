// Starts Swagger UI on /docs from the vendored bundle; no inline script, so the page keeps the CSP.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The online validator badge would be an image from another site: none offline, and the CSP forbids it.
    validatorUrl: null,
    // "Try it out" as the signed-in user: changes carry the session's CSRF token, like every page's requests.
    requestInterceptor: (req) => {
      const token = document.querySelector('meta[name="csrf-token"]').content;
      if (token && !["GET", "HEAD"].includes(String(req.method).toUpperCase())) req.headers["X-CSRF-Token"] = token;
      return req;
    },
  });
});
