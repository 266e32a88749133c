// A tiny static server for the browser example: it serves this package
// (the page, dist/ and node_modules/@noble/ed25519) on 127.0.0.1 and prints
// the page's URL.   node example/serve.mjs [port]
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".map": "application/json" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  const allowed = /^\/(example|dist|node_modules\/@noble\/ed25519)\//.test(path);
  try {
    if (!allowed || path.includes("..")) throw new Error("not here");
    const file = path.endsWith("/") ? join(root, path, "index.html") : join(root, path);
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end("not found\n");
  }
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${server.address().port}/example/`);
});
