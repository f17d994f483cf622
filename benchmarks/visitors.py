"""A class of N on one server: N visitors press Train at the same moment.

    python benchmarks/visitors.py                         # 8 visitors, 20 steps each
    python benchmarks/visitors.py --visitors 1,8,30 --markdown --json results_visitors.json

For each N, a fresh app is started as a Hugging Face Space starts it (`python app.py` with
SYSTEM=spaces, SPACE_ID, GRADIO_SERVER_PORT; bound to 127.0.0.1; hub offline; the app's default
settings: every QGOFT_* / GRADIO_* variable of this shell is dropped, use --env to set one). Then:

1. (unless --no-warmup) one throw-away visitor trains 1 step: the server has loaded the shared
   base and filled its caches, as a Space that has been up for a while;
2. one visitor alone trains --steps steps (the baseline);
3. N visitors, one gradio_client Client (one session) each, wait at a threading.Barrier and press
   Train together with the page's default settings except --steps (and --method).

Per visitor, measured at the client from its press of Train: the first streamed run-info with a
trained step (``step >= 1``), the end of its stream (``done``), steps done, whether it was let in,
waited in line, or was refused ("server is full"), errors. Per N: p50 / p95 of both times,
aggregate steps/s (all trained steps / wall time of the N phase) and its ratio to the lone
visitor's steps/s, the peak RSS of the server's process tree (VmRSS of the server and its
children, sampled every 0.5 s), and where its memory is at the end (/proc/<pid>/smaps_rollup).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _app_server import (AppServer, AppStartError, RssSampler, close_quietly, command_line, connect,  # noqa: E402
                         hwm_mb, percentile, smaps_rollup_mb, stream_train, train_args, train_defaults,
                         tree_rss_mb)

MARKDOWN_HEADER = ("| visitors | let in | waited | refused | errors | first step p50 / p95 (s) | done p50 / p95 (s) "
                   "| steps/s all | vs one alone | peak RSS (MB) |\n"
                   "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def run_phase(url: str, n: int, args: list[Any], timeout: float, connect_timeout: float = 120.0) -> dict[str, Any]:
    """N clients press Train together (a Barrier); every stream followed to its end, within `timeout`."""
    with ThreadPoolExecutor(max_workers=min(8, n)) as pool:
        clients = list(pool.map(lambda _: connect(url, connect_timeout), range(n)))
    barrier = threading.Barrier(n + 1)
    records: list[Optional[dict]] = [None] * n
    jobs: list[Any] = [None] * n
    ends: list[Optional[float]] = [None] * n
    deadline_box: dict[str, float] = {}

    def visitor(k: int) -> None:
        try:
            barrier.wait(timeout=connect_timeout)
        except threading.BrokenBarrierError:
            records[k] = {"visitor": k, "error": "the barrier broke before Train was pressed"}
            return
        t0 = time.perf_counter()
        rec = stream_train(clients[k], args, deadline_box["deadline"], started=t0,
                           on_job=lambda job: jobs.__setitem__(k, job))
        ends[k] = time.perf_counter()
        rec["visitor"] = k
        records[k] = rec

    threads = [threading.Thread(target=visitor, args=(k,), daemon=True, name=f"visitor-{k}") for k in range(n)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline_box["deadline"] = start + timeout
    barrier.wait(timeout=connect_timeout)
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=max(0.0, deadline_box["deadline"] + 5 - time.perf_counter()))
    stragglers = [k for k, t in enumerate(threads) if t.is_alive()]
    for k in stragglers:  # no update for a long time: cancel (bounded wait), then report it
        if jobs[k] is not None:
            try:
                jobs[k].cancel()
            except Exception:  # noqa: BLE001
                pass
    for k in stragglers:
        threads[k].join(timeout=10)
        if records[k] is None:
            records[k] = {"visitor": k, "timed_out": True, "error": f"no end of stream within {timeout:.0f} s",
                          "admitted": False, "refused": False, "steps": 0}
    for c in clients:
        close_quietly(c)
    wall = max([e for e in ends if e is not None] or [time.perf_counter()]) - start
    return summarize([r for r in records if r is not None], wall)


def summarize(records: list[dict], wall: float) -> dict[str, Any]:
    admitted = [r for r in records if r.get("admitted")]
    finished = [r for r in admitted if r.get("final_state") == "done"]
    first = [r["t_first_step"] for r in admitted if r.get("t_first_step") is not None]
    done = [r["t_done"] for r in finished if r.get("t_done") is not None]
    steps = sum(int(r.get("steps") or 0) for r in records)
    return {
        "visitors": len(records), "admitted": len(admitted), "finished": len(finished),
        "waited": sum(1 for r in records if r.get("waited")),
        "refused": sum(1 for r in records if r.get("refused")),
        "errors": sum(1 for r in records if r.get("error") and not r.get("refused")),
        "timed_out": sum(1 for r in records if r.get("timed_out")),
        "first_step_p50_s": percentile(first, 50), "first_step_p95_s": percentile(first, 95),
        "done_p50_s": percentile(done, 50), "done_p95_s": percentile(done, 95),
        "let_in_p95_s": percentile([r.get("t_let_in") for r in admitted], 95),
        "max_place_in_line": max([int(r.get("max_place") or 0) for r in records] or [0]),
        "total_steps": steps, "wall_s": round(wall, 3),
        "steps_per_s": round(steps / wall, 4) if wall > 0 else None,
        "records": records,
    }


def measure(n: int, steps: int, method: Optional[str], model: Optional[str], timeout: float, warmup: bool,
            extra_env: dict[str, str], start_timeout: float, log=print) -> dict[str, Any]:
    """One fresh app: warm-up, one visitor alone, then N together."""
    result: dict[str, Any] = {"visitors": n, "steps": steps, "loadavg_start": os.getloadavg()}
    with AppServer(extra_env, timeout=start_timeout) as server:
        result["server_env"] = server.shown_env()
        result["ready_s"] = round(server.ready_seconds or 0.0, 2)
        log(f"[N={n}] app ready in {result['ready_s']} s on {server.url} (pid {server.pid}), "
            f"RSS {tree_rss_mb(server.pid):.0f} MB")
        with RssSampler(server.pid) as sampler:
            probe = connect(server.url)
            defaults = train_defaults(probe)
            args = train_args(defaults, steps=steps, method=method, model=model)
            result["train_args"] = dict(zip(defaults, args))
            if warmup:
                sampler.phase("warmup")
                warm_args = train_args(defaults, steps=1, method=method, model=model, seed=12345)
                rec = stream_train(probe, warm_args, time.perf_counter() + timeout)
                result["warmup"] = rec
                log(f"[N={n}] warm-up visitor: 1 step in {rec['t_done']} s"
                    + (f" (error: {rec['error']})" if rec.get("error") else ""))
            close_quietly(probe)
            result["rss_before_mb"] = round(tree_rss_mb(server.pid), 1)
            sampler.phase("lone")
            lone = run_phase(server.url, 1, args, timeout)
            result["lone"] = lone
            log(f"[N={n}] one visitor alone: {lone['total_steps']} steps, first step "
                f"{lone['first_step_p50_s']} s, done {lone['done_p50_s']} s, {lone['steps_per_s']} steps/s")
            time.sleep(1.0)
            sampler.phase("many")
            many = run_phase(server.url, n, args, timeout)
            sampler.phase(None)
            result["many"] = many
            lone_rate, many_rate = lone.get("steps_per_s"), many.get("steps_per_s")
            result["ratio_to_lone"] = round(many_rate / lone_rate, 3) if lone_rate and many_rate else None
            result["rss_end_mb"] = round(tree_rss_mb(server.pid), 1)
            result["peak_rss_mb"] = round(sampler.peak_mb, 1)
            result["phase_peak_rss_mb"] = {k: round(v, 1) for k, v in sampler.phase_peaks.items()}
            result["server_vmhwm_mb"] = round(hwm_mb(server.pid), 1)
            result["smaps_rollup_end_mb"] = smaps_rollup_mb(server.pid)
            result["rss_samples"] = sampler.samples
        if server.process is not None and server.process.poll() is not None:
            result["server_exit"] = server.process.returncode
            result["server_log_tail"] = server.log_tail()
    result["loadavg_end"] = os.getloadavg()
    return result


def markdown_row(r: dict[str, Any]) -> str:
    m = r["many"]

    def pair(a, b):
        return f"{a if a is not None else '–'} / {b if b is not None else '–'}"

    return (f"| {r['visitors']} | {m['admitted']} | {m['waited']} | {m['refused']} | {m['errors']} | "
            f"{pair(m['first_step_p50_s'], m['first_step_p95_s'])} | {pair(m['done_p50_s'], m['done_p95_s'])} | "
            f"{m['steps_per_s']} | {r['ratio_to_lone'] if r['ratio_to_lone'] is not None else '–'}x | "
            f"{r['peak_rss_mb']:.0f} |")


def report(r: dict[str, Any]) -> str:
    m, lone = r["many"], r["lone"]
    lines = [f"N = {r['visitors']} visitors pressing Train together ({r['steps']} steps each), app ready in "
             f"{r['ready_s']} s",
             f"  one alone : {lone['total_steps']} steps, first step {lone['first_step_p50_s']} s, done "
             f"{lone['done_p50_s']} s -> {lone['steps_per_s']} steps/s",
             f"  all N     : let in {m['admitted']} (waited in line {m['waited']}), refused {m['refused']}, "
             f"errors {m['errors']}, timed out {m['timed_out']}; let in (slot held) p95 {m['let_in_p95_s']} s, "
             f"longest line {m['max_place_in_line']}",
             f"              first trained step p50 {m['first_step_p50_s']} s / p95 {m['first_step_p95_s']} s; "
             f"done p50 {m['done_p50_s']} s / p95 {m['done_p95_s']} s",
             f"              {m['total_steps']} steps in {m['wall_s']} s -> {m['steps_per_s']} steps/s, "
             f"{r['ratio_to_lone']}x the lone visitor's rate",
             f"  memory    : peak RSS of the server tree {r['peak_rss_mb']:.0f} MB (before the lone visitor "
             f"{r['rss_before_mb']:.0f} MB, at the end {r['rss_end_mb']:.0f} MB; server VmHWM "
             f"{r['server_vmhwm_mb']:.0f} MB; Anonymous at the end "
             f"{r['smaps_rollup_end_mb'].get('Anonymous', 0):.0f} MB)"]
    errors = sorted({str(rec.get("error"))[:160] for rec in m["records"] if rec.get("error")})
    lines += [f"  error: {e}" for e in errors[:5]]
    return "\n".join(lines)


def parse_env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--visitors", default="8", help="visitors pressing Train together; a list (1,8,30) "
                        "runs each on a fresh app")
    parser.add_argument("--steps", type=int, default=20, help="steps each visitor trains (default 20)")
    parser.add_argument("--method", default=None, help="method (default: the page's default, qgoft)")
    parser.add_argument("--model", default=None, help="model (default: the page's default); e.g. a local "
                        "folder for a quick smoke test")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds each phase may take (default 1200)")
    parser.add_argument("--start-timeout", type=float, default=300, help="seconds the app may take to answer")
    parser.add_argument("--no-warmup", action="store_true", help="skip the throw-away 1-step visitor")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra variable for the app (e.g. QGOFT_MAX_CONCURRENT_RUNS=4); repeatable")
    parser.add_argument("--json", type=Path, default=None, help="write every number (and every visitor) here")
    parser.add_argument("--markdown", action="store_true", help="print a README table row per N")
    args = parser.parse_args(argv)
    try:
        counts = [int(x) for x in str(args.visitors).split(",") if x.strip()]
    except ValueError:
        parser.error("--visitors wants numbers, e.g. 8 or 1,8,30")
    if not counts or min(counts) < 1 or args.steps < 1:
        parser.error("--visitors and --steps must be at least 1")

    command = command_line()
    print(f"command: {command}", flush=True)
    out: dict[str, Any] = {"command": command, "cpu_count": os.cpu_count(),
                           "settings": {"visitors": counts, "steps": args.steps, "method": args.method,
                                        "model": args.model, "timeout": args.timeout,
                                        "warmup": not args.no_warmup, "env": parse_env(args.env)},
                           "results": []}
    status = 0
    for n in counts:
        try:
            r = measure(n, args.steps, args.method, args.model, args.timeout, not args.no_warmup,
                        parse_env(args.env), args.start_timeout, log=lambda s: print(s, flush=True))
        except AppStartError as exc:
            print(f"[N={n}] the app did not start: {exc}", flush=True)
            out["results"].append({"visitors": n, "error": str(exc)[-2000:]})
            status = 2
            continue
        out["results"].append(r)
        print(report(r), flush=True)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=str))
    if args.markdown:
        print(f"\n<!-- {command} -->\n{MARKDOWN_HEADER}")
        for r in out["results"]:
            if "many" in r:
                print(markdown_row(r))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
        print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
