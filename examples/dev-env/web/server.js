// The frontend: a Node server with no dependencies, for pitstop's proxy mode.
//
// It binds $HOST:$PORT, a private port pitstop picks for each version; pitstop's proxy on
// the public address sends each request to the serving version, and at a swap lets the
// requests in flight on the old one finish before stopping it. /api/* is forwarded to the
// API ($API_URL), the service this one depends on: pitstop starts it only once the API is
// ready.
//
// Change VERSION and save: `node --check` runs, then the new version starts beside this one.

"use strict";

const http = require("node:http");

const VERSION = "v1";
const API_URL = new URL(process.env.API_URL || "http://127.0.0.1:8001");

function page() {
  return `<!doctype html>
<title>dev-env</title>
<h1>dev-env frontend ${VERSION}</h1>
<p id="api">asking the API…</p>
<script>
fetch("/api/hello").then(r => r.json()).then(j => {
  document.getElementById("api").textContent = j.message + " (" + j.version + ")";
});
</script>
`;
}

function forward(req, res) {
  const upstream = http.request(
    {
      host: API_URL.hostname,
      port: API_URL.port,
      method: req.method,
      path: req.url.slice("/api".length) || "/",
      headers: { accept: req.headers.accept || "*/*" },
    },
    (answer) => {
      res.writeHead(answer.statusCode, { "content-type": answer.headers["content-type"] });
      answer.pipe(res);
    },
  );
  upstream.on("error", (err) => {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end(`the API did not answer: ${err.message}\n`);
  });
  req.pipe(upstream);
}

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.end("ok\n");
  } else if (req.url === "/version") {
    res.end(`web ${VERSION}\n`);
  } else if (req.url.startsWith("/api/")) {
    forward(req, res);
  } else {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page());
  }
});

server.listen(Number(process.env.PORT || 8000), process.env.HOST || "127.0.0.1", () => {
  console.log(`web ${VERSION} listening on ${process.env.HOST || "127.0.0.1"}:${server.address().port}`);
});

// pitstop sends SIGTERM once no request is in flight here; close() ends idle keep-alive
// connections too (Node 19+), so the process exits at once.
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections?.();
});
