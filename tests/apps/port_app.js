// A $PORT-style app on Node's http module: binds HOST:PORT itself, answers with VERSION.
// GET / -> VERSION, /health -> ok, /slow?s=N -> prints "SLOW <VERSION>" then VERSION after N s,
// /stream -> chunked. Prints "LISTENING <port>" once it accepts connections.
"use strict";
const http = require("http");

const version = process.env.VERSION || "v0";
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/") {
    res.end(version);
  } else if (url.pathname === "/health") {
    res.end("ok");
  } else if (url.pathname === "/slow") {
    process.stdout.write(`SLOW ${version}\n`);
    setTimeout(() => res.end(version), 1000 * Number(url.searchParams.get("s") || "1"));
  } else if (url.pathname === "/stream") {
    res.write(`first ${version}\n`);
    let i = 0;
    const timer = setInterval(() => {
      res.write(`part ${i}\n`);
      if (++i === 3) { clearInterval(timer); res.end(); }
    }, 1);
  } else {
    res.statusCode = 404;
    res.end("not found");
  }
});
server.listen(Number(process.env.PORT), process.env.HOST || "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
