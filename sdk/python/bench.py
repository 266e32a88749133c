"""The SDK's side of testnet.BenchmarkSDKs: PEAPOD_BENCH_N echo requests of
64 bytes, PEAPOD_BENCH_CONCURRENCY in flight, through PEAPOD_WS_URL to the
provider at PEAPOD_PROVIDER_URL. It prints one JSON line: the requests, the
seconds they took (after one warm-up request) and every latency."""

import asyncio
import json
import os
import time

import peapod


async def main():
    n = int(os.environ.get("PEAPOD_BENCH_N", "100"))
    concurrency = int(os.environ.get("PEAPOD_BENCH_CONCURRENCY", "8"))
    provider = await peapod.discover(os.environ["PEAPOD_PROVIDER_URL"], on_warning=lambda m: None)
    async with await peapod.connect(os.environ["PEAPOD_WS_URL"], provider, on_warning=lambda m: None) as client:
        data = b"a" * 64
        await peapod.echo(client, data)
        latencies = []
        remaining = n

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                reply = await peapod.echo(client, data)
                if reply != data:
                    raise RuntimeError("wrong echo")
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    print(json.dumps({"requests": n, "seconds": seconds, "latencies": latencies}))


asyncio.run(main())
