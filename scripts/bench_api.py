#!/usr/bin/env python3
"""The API under load (issue #34): `kizashi replay --serve` on a generated population, N clients
asking the heaviest /v1 queries while a separate prober process times /healthz and /metrics, then
SIGTERM and the time to exit. Python 3 standard library only; all traffic goes to 127.0.0.1, every
loop is bounded in time, and the server is always stopped (SIGKILL after 30 s, reported).

Run through scripts/bench-api, which generates the population and picks the binary:
  bench_api.py run --bin BIN --data DIR --out DIR --port PORT --clients N --seconds S --result FILE
  bench_api.py probe PORT SECONDS FILE      (the prober, started by `run` as its own process)
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
# The heaviest queries the API has (src/api/mod.rs `queue`): a full page (limit=1000, the
# largest) sorted by renewal (a sort of all 100,000 accounts), by ARR at risk (filter + sort),
# of one band, and the CSV export. Each client starts at a different one and cycles through them.
QUERIES = [
    ("renewal", "/v1/accounts?limit=1000&sort=renewal"),
    ("arr_at_risk", "/v1/accounts?limit=1000&sort=arr_at_risk"),
    ("band_red", "/v1/accounts?band=red&limit=1000"),
    ("csv_renewal", "/v1/accounts?limit=1000&sort=renewal&format=csv"),
]
QUERY_TIMEOUT = 30.0  # a query waits at most this long (connect, queue, answer)
PROBE_TIMEOUT = 10.0
STOP_GRACE = 30.0  # SIGKILL after this long past SIGTERM


def pct(values, p):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def stats_ms(seconds):
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(seconds),
        "p50_ms": round(pct(seconds, 50) * 1000, 2),
        "p99_ms": round(pct(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


def get(port, path, timeout, conn=None):
    """One GET; returns (status, body bytes, seconds, conn). A fresh connection unless `conn`."""
    c = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    t0 = time.perf_counter()
    c.request("GET", path, headers={"Host": f"{HOST}:{port}"})
    r = c.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    if conn is None:
        c.close()
    return r.status, body, dt, c, r


# ---------------------------------------------------------------- prober (its own process)

def probe_main(port, seconds, out):
    """/healthz every 50 ms and /metrics every 200 ms, each on a fresh connection (as kubelet and
    Prometheus do), for `seconds`; writes every sample to `out` as JSON."""
    port, seconds = int(port), float(seconds)
    end = time.monotonic() + seconds
    samples = {"healthz": [], "metrics": []}

    def loop(name, path, every):
        nxt = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= end:
                return
            if now < nxt:
                time.sleep(min(nxt - now, end - now))
                continue
            nxt += every
            if nxt < now:  # a probe took longer than its period: the next one starts right away
                nxt = now
            t0 = time.perf_counter()
            try:
                status, _, dt, _, _ = get(port, path, PROBE_TIMEOUT)
                samples[name].append({"t": round(now - (end - seconds), 3), "status": status, "s": dt})
            except Exception as e:  # noqa: BLE001 - a timeout or reset is a result here
                samples[name].append({"t": round(now - (end - seconds), 3), "error": type(e).__name__,
                                      "s": time.perf_counter() - t0})

    ts = [threading.Thread(target=loop, args=("healthz", "/healthz", 0.05)),
          threading.Thread(target=loop, args=("metrics", "/metrics", 0.2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + PROBE_TIMEOUT + 5)
    with open(out, "w") as f:
        json.dump(samples, f)


# ---------------------------------------------------------------- the run

def cpu_seconds(pid):
    """utime + stime of a process, in seconds (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def listening(port):
    """Whether a socket listens on 127.0.0.1:port (Linux /proc/net/tcp; no connection made)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(l.split()[1] == want and l.split()[3] == "0A" for l in f.readlines()[1:])
    except OSError:
        return None


def threads_of(pid):
    """The process's threads, counted by name."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            out[name] = out.get(name, 0) + 1
    except OSError:
        pass
    return dict(sorted(out.items()))


def wait_ready(proc, port, log, limit):
    """Until the replay is done (its log says so) and /healthz and /readyz answer 200."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"bench-api: the server exited ({proc.returncode}) before it was ready; see {log}")
        try:
            with open(log, errors="replace") as f:
                done = "replay done" in f.read()
            if done and get(port, "/healthz", 2)[0] == 200 and get(port, "/readyz", 2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"bench-api: not ready after {limit:.0f} s; see {log}")


def run(a):
    port, clients, seconds = int(a["port"]), int(a["clients"]), float(a["seconds"])
    honor_retry = os.environ.get("KIZASHI_BENCH_HONOR_RETRY_AFTER", "1") != "0"
    log = os.path.join(a["out"], "server.log")
    d = a["data"]
    cmd = [a["bin"], "replay", "--usage", f"{d}/usage.jsonl", "--support", f"{d}/support.jsonl",
           "--accounts", f"{d}/accounts.jsonl", "--out", a["out"], "--serve", "--http", f"{HOST}:{port}"]
    result = {"clients": clients, "seconds": seconds, "honor_retry_after": honor_retry,
              "queries": [q for _, q in QUERIES], "loadavg_before": os.getloadavg()}
    print(f"bench-api: {' '.join(cmd)}", flush=True)
    t_start = time.monotonic()
    with open(log, "w") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_ready(proc, port, log, float(os.environ.get("KIZASHI_BENCH_READY_TIMEOUT", "900")))
        result["replay_and_ready_seconds"] = round(time.monotonic() - t_start, 1)
        result["server_rss_mib_ready"] = rss_mib(proc.pid)
        print(f"bench-api: replay done and serving after {result['replay_and_ready_seconds']} s", flush=True)

        # Each query alone on the idle server (three times; the best), as a reference.
        alone = {}
        for name, q in QUERIES:
            best, size = None, 0
            for _ in range(3):
                status, body, dt, _, _ = get(port, q, QUERY_TIMEOUT)
                if status != 200:
                    sys.exit(f"bench-api: {q} answered {status}: {body[:200]!r}")
                best, size = min(best or dt, dt), len(body)
            alone[name] = {"ms": round(best * 1000, 1), "bytes": size}
        result["alone"] = alone
        print(f"bench-api: each query alone: {alone}", flush=True)

        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        prober_out = os.path.join(a["out"], "probes.json")
        prober = subprocess.Popen([sys.executable, os.path.abspath(__file__), "probe", str(port), str(seconds), prober_out])
        deadline = time.monotonic() + seconds
        lock = threading.Lock()
        per = {name: {"ok": [], "statuses": {}, "errors": {}} for name, _ in QUERIES}
        cut_at_stop = {"n": 0}
        drained = {}
        in_flight = {"n": 0}
        end_times = {"answered": [], "cut": []}

        def client(i):
            conn = None
            k = i % len(QUERIES)
            while time.monotonic() < deadline:
                name, q = QUERIES[k]
                k = (k + 1) % len(QUERIES)
                rec = per[name]
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(HOST, port, timeout=QUERY_TIMEOUT)
                    with lock:
                        in_flight["n"] += 1
                    try:
                        status, _, dt, _, r = get(port, q, QUERY_TIMEOUT, conn)
                    finally:
                        with lock:
                            in_flight["n"] -= 1
                    with lock:
                        if time.monotonic() >= deadline:  # in flight at the stop: answered in the drain
                            drained[status] = drained.get(status, 0) + 1
                            end_times["answered"].append(time.monotonic())
                        else:
                            rec["statuses"][status] = rec["statuses"].get(status, 0) + 1
                            if status == 200:
                                rec["ok"].append(dt)
                    if r.will_close:
                        conn.close()
                        conn = None
                    if status == 503 and honor_retry:
                        ra = float(r.getheader("Retry-After", "1") or 1)
                        time.sleep(max(0.0, min(ra, deadline - time.monotonic())))
                except Exception as e:  # noqa: BLE001 - counted, then a new connection
                    with lock:
                        if time.monotonic() >= deadline:
                            cut_at_stop["n"] += 1
                            end_times["cut"].append(time.monotonic())
                        else:
                            rec["errors"][type(e).__name__] = rec["errors"].get(type(e).__name__, 0) + 1
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.05)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        while time.monotonic() < deadline:
            time.sleep(0.1)

        # The end of the window: SIGTERM while the last queries are still being answered.
        cpu1 = cpu_seconds(proc.pid)
        window = time.monotonic() - wall0
        try:
            status, body, _, _, _ = get(port, "/metrics", PROBE_TIMEOUT)
            result["metrics_at_end"] = [l for l in body.decode().splitlines()
                                        if l.startswith(("kizashi_http_rejected_total", "kizashi_http_requests_total", "kizashi_http_connections"))
                                        or (l.startswith("kizashi_http_request_duration_seconds")
                                            and ('route="/healthz"' in l or 'route="/metrics"' in l))]
        except Exception as e:  # noqa: BLE001
            result["metrics_at_end"] = [f"scrape failed: {type(e).__name__}"]
        result["server_rss_mib_end"] = rss_mib(proc.pid)
        t_term = time.monotonic()
        result["in_flight_at_sigterm"] = in_flight["n"]
        proc.send_signal(signal.SIGTERM)
        timeline = []  # every 100 ms until exit: is the port listening, the server's threads by name
        try:
            while proc.poll() is None:
                if time.monotonic() - t_term > STOP_GRACE:
                    raise subprocess.TimeoutExpired(cmd, STOP_GRACE)
                snap = {"t": round(time.monotonic() - t_term, 2), "listening": listening(port), "threads": threads_of(proc.pid)}
                if not timeline or {k: v for k, v in timeline[-1].items() if k != "t"} != {k: v for k, v in snap.items() if k != "t"}:
                    timeline.append(snap)
                time.sleep(0.1)
            result["stop"] = {"seconds": round(time.monotonic() - t_term, 3), "exit_code": proc.returncode, "killed": False}
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            result["stop"] = {"seconds": None, "exit_code": proc.returncode, "killed": True,
                              "note": f"no exit {STOP_GRACE:.0f} s after SIGTERM: killed with SIGKILL"}
        for t in threads:
            t.join(max(0.1, t_term + QUERY_TIMEOUT + 5 - time.monotonic()))
        result["clients_still_running"] = sum(t.is_alive() for t in threads)
        result["stop_timeline"] = timeline
        result["stop_client_side"] = {
            "answered_s_after_sigterm": [round(x - t_term, 2) for x in sorted(end_times["answered"])],
            "cut_s_after_sigterm": [round(x - t_term, 2) for x in sorted(end_times["cut"])],
        }
        try:
            prober.wait(PROBE_TIMEOUT + 15)
        except subprocess.TimeoutExpired:
            prober.kill()
        with open(prober_out) as f:
            probes = json.load(f)

        result["window_seconds"] = round(window, 2)
        if cpu0 is not None and cpu1 is not None:
            result["server_cpu_seconds"] = round(cpu1 - cpu0, 1)
            result["server_cpu_cores_avg"] = round((cpu1 - cpu0) / window, 2)
        result["loadavg_after"] = os.getloadavg()
        for name in ("healthz", "metrics"):
            s = probes[name]
            ok = [x["s"] for x in s if x.get("status") == 200]
            r = stats_ms(ok)
            r["not_200"] = sum(1 for x in s if "status" in x and x["status"] != 200)
            r["errors"] = {}
            for x in s:
                if "error" in x:
                    r["errors"][x["error"]] = r["errors"].get(x["error"], 0) + 1
            r["over_50ms"] = sum(1 for v in ok if v > 0.05)
            r["over_200ms"] = sum(1 for v in ok if v > 0.2)
            r["slowest"] = sorted(({"t": x["t"], "ms": round(x["s"] * 1000, 1)} for x in s), key=lambda x: -x["ms"])[:5]
            result[name] = r
        all_ok, totals, errors = [], {}, {}
        result["by_query"] = {}
        for name, _ in QUERIES:
            rec = per[name]
            all_ok += rec["ok"]
            for k, v in rec["statuses"].items():
                totals[k] = totals.get(k, 0) + v
            for k, v in rec["errors"].items():
                errors[k] = errors.get(k, 0) + v
            result["by_query"][name] = dict(stats_ms(rec["ok"]), statuses={str(k): v for k, v in rec["statuses"].items()},
                                            errors=rec["errors"])
        result["queries_200"] = stats_ms(all_ok)
        result["statuses"] = {str(k): v for k, v in sorted(totals.items())}
        result["answered_200_per_second"] = round(totals.get(200, 0) / window, 1)
        result["answered_503"] = totals.get(503, 0)
        result["errors_in_window"] = errors
        result["cut_at_stop"] = cut_at_stop["n"]
        result["answered_after_the_window"] = {str(k): v for k, v in drained.items()}
        with open(log, errors="replace") as f:
            text = f.read()
        result["log_panics"] = text.count("panicked")
        result["log_errors"] = sum(1 for l in text.splitlines() if " ERROR " in l)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(a["result"], "w") as f:
        json.dump(result, f, indent=2)
    report(result)


def report(r):
    def row(name, s):
        return f"  {name:<10} p50 {s['p50_ms']} ms   p99 {s['p99_ms']} ms   max {s['max_ms']} ms   (n={s['n']})"
    print()
    print(f"== the API under load: {r['clients']} clients, {r['window_seconds']} s "
          f"({'honouring' if r['honor_retry_after'] else 'ignoring'} Retry-After) ==")
    print(row("/healthz", r["healthz"]), f" errors {r['healthz']['errors']}  over 50 ms: {r['healthz']['over_50ms']}")
    print(row("/metrics", r["metrics"]), f" errors {r['metrics']['errors']}  over 200 ms: {r['metrics']['over_200ms']}")
    print(row("queries", r["queries_200"]), "(200s only)")
    for name, s in r["by_query"].items():
        print(row(name, s), f" statuses {s['statuses']} errors {s['errors']}")
    print(f"  statuses {r['statuses']}; {r['answered_200_per_second']} answered (200)/s; 503s {r['answered_503']}; "
          f"errors in the window {r['errors_in_window']}")
    print(f"  in flight at SIGTERM: answered {r['answered_after_the_window']}, cut (connection closed) {r['cut_at_stop']}")
    print(f"  server CPU {r.get('server_cpu_cores_avg')} cores on average; load average before {r['loadavg_before']}, after {r['loadavg_after']}")
    sc = r.get("stop_client_side", {})
    if sc:
        a, c = sc["answered_s_after_sigterm"], sc["cut_s_after_sigterm"]
        print(f"  after SIGTERM: {r.get('in_flight_at_sigterm')} queries in flight; last answered at {a[-1] if a else None} s; "
              f"connections cut between {c[0] if c else None} and {c[-1] if c else None} s")
    for snap in r.get("stop_timeline", []):
        print(f"    +{snap['t']:>6} s  listening={snap['listening']}  threads={snap['threads']}")
    st = r["stop"]
    print(f"  stop after SIGTERM: {st['seconds']} s, exit code {st['exit_code']}" + (f" ({st['note']})" if st["killed"] else ""))
    h, m = r["healthz"], r["metrics"]
    goals = [
        ("/healthz p99 < 50 ms", h["p99_ms"] is not None and h["p99_ms"] < 50 and not h["errors"]),
        ("/metrics p99 < 200 ms", m["p99_ms"] is not None and m["p99_ms"] < 200 and not m["errors"]),
        ("stop within 10 s of SIGTERM", not st["killed"] and st["seconds"] < 10 and st["exit_code"] == 0),
    ]
    for g, ok in goals:
        print(f"  goal {g}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "probe":
        probe_main(*sys.argv[2:5])
    elif len(sys.argv) >= 2 and sys.argv[1] == "run":
        args = sys.argv[2:]
        run({args[i].lstrip("-"): args[i + 1] for i in range(0, len(args), 2)})
    elif len(sys.argv) >= 3 and sys.argv[1] == "report":
        with open(sys.argv[2]) as f:
            report(json.load(f))
    else:
        sys.exit(__doc__)
