// Starts Swagger UI (vendor/swagger-ui-bundle.js, loaded just before this script) on keycard's own
// OpenAPI document. Everything it loads comes from this server: no validator badge, no document
// URL taken from the query string, and an authorization entered in "Authorize" stays in memory
// (it is not persisted to localStorage).
"use strict";

window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  displayRequestDuration: true,
  validatorUrl: null,
  queryConfigEnabled: false,
  persistAuthorization: false,
});
