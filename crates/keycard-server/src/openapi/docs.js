// Renders /openapi.json as a plain reference: operations grouped by tag, with their security,
// parameters, request body and responses (status, codes, schemas). No dependencies; elements
// are built with textContent only (the page enforces Trusted Types).
"use strict";

(function () {
  function el(tag, text, children) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  // A one-line type description of a schema: `TokenResponse`, `array of SessionInfo`, `string (date-time)`.
  function typeOf(schema) {
    if (!schema) return "";
    if (schema.$ref) return refName(schema.$ref);
    if (schema.oneOf || schema.anyOf) {
      return (schema.oneOf || schema.anyOf).map(typeOf).join(" | ");
    }
    let type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
    if (type.includes("array") && schema.items) type = type.replace("array", "array of " + typeOf(schema.items));
    if (schema.enum) type += " (" + schema.enum.map(String).join(", ") + ")";
    if (schema.format) type += " (" + schema.format + ")";
    return type;
  }

  function schemaTable(name, schema, doc) {
    const section = el("section", null, [el("h3", name)]);
    section.id = "schema-" + name;
    if (schema.description) section.append(el("p", schema.description));
    if (schema.enum) {
      section.append(el("p", "One of: " + schema.enum.join(", ")));
      return section;
    }
    const props = schema.properties || {};
    const required = new Set(schema.required || []);
    const rows = Object.keys(props).map((key) =>
      el("tr", null, [
        el("td", null, [el("code", key)]),
        el("td", typeOf(props[key])),
        el("td", required.has(key) ? "yes" : "no"),
        el("td", props[key].description || ""),
      ]),
    );
    if (rows.length) {
      const head = el("tr", null, ["field", "type", "required", "description"].map((h) => el("th", h)));
      section.append(el("table", null, [el("thead", null, [head]), el("tbody", null, rows)]));
    }
    return section;
  }

  function content(media) {
    const list = el("ul");
    for (const [type, body] of Object.entries(media || {})) {
      const item = el("li", null, [el("code", type)]);
      if (body.schema) item.append(" — " + typeOf(body.schema));
      const examples = Object.keys(body.examples || {});
      if (examples.length) item.append(el("div", "codes: " + examples.join(", ")));
      list.append(item);
    }
    return list.childElementCount ? list : null;
  }

  function securityText(op, doc) {
    const reqs = op.security || doc.security;
    if (!reqs || !reqs.length) return "none";
    return reqs
      .map((req) => {
        const names = Object.keys(req);
        return names.length ? names.join(" + ") : "none";
      })
      .join(" or ");
  }

  function operation(path, method, op, doc) {
    const title = el("summary", null, [el("strong", method.toUpperCase()), " ", el("code", path), " ", op.summary || ""]);
    const block = el("details", null, [title]);
    block.id = op.operationId || method + path;
    if (op.description) block.append(el("p", op.description));
    block.append(el("p", "Auth: " + securityText(op, doc)));
    if (op.parameters && op.parameters.length) {
      block.append(el("h4", "Parameters"));
      block.append(
        el(
          "ul",
          null,
          op.parameters.map((p) =>
            el("li", null, [
              el("code", p.name),
              " (" + p.in + (p.required ? ", required" : "") + ") " + typeOf(p.schema) + " — " + (p.description || ""),
            ]),
          ),
        ),
      );
    }
    if (op.requestBody) {
      block.append(el("h4", "Request body" + (op.requestBody.required ? "" : " (optional)")));
      if (op.requestBody.description) block.append(el("p", op.requestBody.description));
      block.append(content(op.requestBody.content));
    }
    block.append(el("h4", "Responses"));
    const rows = Object.entries(op.responses || {}).map(([status, response]) =>
      el("tr", null, [
        el("td", status),
        el("td", response.description || ""),
        el("td", null, [content(response.content)]),
        el("td", Object.keys(response.headers || {}).join(", ")),
      ]),
    );
    const head = el("tr", null, ["status", "description", "body", "headers"].map((h) => el("th", h)));
    block.append(el("table", null, [el("thead", null, [head]), el("tbody", null, rows)]));
    return block;
  }

  function render(doc) {
    const main = document.getElementById("docs");
    main.replaceChildren();
    document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
    if (doc.info.description) main.append(el("p", doc.info.description));
    const tags = (doc.tags || []).map((t) => t.name);
    const byTag = new Map(tags.map((t) => [t, []]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of ["get", "put", "post", "delete", "patch", "head", "options"]) {
        const op = item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operation(path, method, op, doc));
      }
    }
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const meta = (doc.tags || []).find((t) => t.name === tag);
      main.append(el("h2", tag));
      if (meta && meta.description) main.append(el("p", meta.description));
      for (const op of ops) main.append(op);
    }
    const components = doc.components || {};
    if (components.securitySchemes) {
      main.append(el("h2", "Security schemes"));
      for (const [name, scheme] of Object.entries(components.securitySchemes)) {
        const where = scheme.type === "http" ? "HTTP " + scheme.scheme : scheme.type + " in " + scheme.in + " " + scheme.name;
        main.append(el("p", null, [el("code", name), " — " + where + ". " + (scheme.description || "")]));
      }
    }
    main.append(el("h2", "Schemas"));
    for (const [name, schema] of Object.entries(components.schemas || {})) main.append(schemaTable(name, schema, doc));
  }

  async function load() {
    try {
      const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
    } catch (e) {
      document.getElementById("status").textContent = "Could not load /openapi.json: " + e.message;
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
