// The browser example: discover, connect, and kv calls, with every step
// written to the page. ?provider=…&ws=…&run=demo fills the fields and runs
// the demo at once (the headless browser test uses it).
import { LocalStorageTrustStore, PeapodError, connect, discover, kv } from "../dist/index.js";

const $ = (id) => document.getElementById(id);
const log = (line) => ($("log").textContent += line + "\n");
const status = (state, text) => {
  $("status").dataset.state = state;
  $("status").textContent = text;
};
let client;

async function ensureClient() {
  if (client) return client;
  const provider = await discover($("provider").value, {
    trustStore: new LocalStorageTrustStore(),
    onWarning: (w) => log("warning: " + w),
  });
  log(`provider ${provider.address.text}`);
  log(`  key ${provider.keyText} (${provider.trust}), services ${provider.services.map((s) => s.name).join(", ")}`);
  client = await connect($("ws").value, provider, { onWarning: (w) => log("warning: " + w) });
  log(`connected through ${client.selfAddress}`);
  status("ok", "Connected.");
  return client;
}

async function op(name) {
  const c = await ensureClient();
  const key = $("key").value;
  switch (name) {
    case "put":
      await kv.put(c, key, $("value").value);
      return log(`put ${key} = ${$("value").value}`);
    case "get":
      return log(`get ${key} → ${(await kv.get(c, key)) ?? "(not found)"}`);
    case "list":
      return log(`list → ${JSON.stringify((await kv.list(c, "")).keys)}`);
    case "delete":
      await kv.delete(c, key);
      return log(`deleted ${key}`);
  }
}

// demo runs put, get, list and delete and checks what comes back.
async function demo() {
  const c = await ensureClient();
  const key = `browser/${Date.now()}`;
  const value = $("value").value;
  await kv.put(c, key, value);
  const got = await kv.get(c, key);
  const listed = (await kv.list(c, "browser/")).keys;
  await kv.delete(c, key);
  const after = await kv.get(c, key);
  log(`put ${key}, get → ${got}, list → ${JSON.stringify(listed)}, after delete → ${after ?? "(not found)"}`);
  if (got !== value || !listed.includes(key) || after !== undefined) throw new Error("the store did not answer as expected");
  return "demo passed";
}

async function guarded(f) {
  try {
    const done = await f();
    status("ok", done ?? "Done.");
  } catch (e) {
    const code = e instanceof PeapodError ? ` [${e.code}]` : "";
    log(`error${code}: ${e.message}`);
    status("error", `Error${code}: ${e.message}`);
  }
}

$("connect").onclick = () => guarded(ensureClient);
$("demo").onclick = () => guarded(demo);
for (const b of document.querySelectorAll("button[data-op]")) b.onclick = () => guarded(() => op(b.dataset.op));

const params = new URLSearchParams(location.search);
if (params.has("provider")) $("provider").value = params.get("provider");
if (params.has("ws")) $("ws").value = params.get("ws");
if (params.get("run") === "demo") guarded(demo);
