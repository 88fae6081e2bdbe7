// Swagger UI over this stage's OpenAPI document (a relative URL keeps the stage prefix).
"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    filter: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // never send the document to validator.swagger.io
    persistAuthorization: false, // a token never outlives the tab
  });
});
