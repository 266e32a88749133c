// The SDK's side of testnet.BenchmarkSDKs: PEAPOD_BENCH_N echo requests of
// 64 bytes, PEAPOD_BENCH_CONCURRENCY in flight, through PEAPOD_WS_URL to the
// provider at PEAPOD_PROVIDER_URL. It prints one JSON line: the requests,
// the seconds they took (after one warm-up request) and every latency.
import { connect, discover, echo } from "../dist/index.js";

const n = Number(process.env.PEAPOD_BENCH_N ?? 100);
const concurrency = Number(process.env.PEAPOD_BENCH_CONCURRENCY ?? 8);
const provider = await discover(process.env.PEAPOD_PROVIDER_URL, { onWarning() {} });
const client = await connect(process.env.PEAPOD_WS_URL, provider, { onWarning() {} });
const data = new Uint8Array(64).fill(0x61);
await echo(client, data);

const latencies = [];
let next = 0;
const start = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      const t = performance.now();
      const reply = await echo(client, data);
      if (reply.length !== data.length) throw new Error("wrong echo");
      latencies.push((performance.now() - t) / 1000);
    }
  }),
);
const seconds = (performance.now() - start) / 1000;
client.close();
console.log(JSON.stringify({ requests: n, seconds, latencies }));
