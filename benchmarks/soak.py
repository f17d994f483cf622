"""Memory that must plateau: visitors one after another, each with its own uploaded data set.

    python benchmarks/soak.py                        # 30 visitors, 4000 rows each, 2 steps
    python benchmarks/soak.py --visitors 30 --json results_soak.json

The app is started as visitors.py starts it (a Space's environment on 127.0.0.1, default
settings). Then, one after another, each visitor

1. writes its own CSV (``text,label``; --rows synthetic sentences built from word lists with a
   per-visitor seed, so every data set differs),
2. connects (one gradio_client Client: its own session) and uploads the file through the Train
   tab's upload event (``handle_file`` on the endpoint the file box's ``upload`` event has,
   ``/uploaded`` today),
3. presses Train on task "uploaded" for --steps steps and follows the stream to "done",
4. leaves: ``client.close()`` ends the client's heartbeat stream; Gradio sees the session end
   (within GRADIO_HEARTBEAT_INTERVAL seconds, set to --heartbeat here) and runs the app's
   ``demo.unload`` handler, which calls ``RunRegistry.release`` (stop the run, drop it and the
   uploaded data set, gc). With ``--leave abandon`` clients never close: only the registry's idle
   sweep (QGOFT_IDLE_MINUTES, at least 1 minute, run when a new visitor arrives) frees them.

After each visitor, and a settle of --settle seconds, the RSS of the server's process tree and the
server's Anonymous memory (/proc/<pid>/smaps_rollup) are sampled. The issue's target: the RSS grows
less than 100 MB from after visitor 10 to the end. Today's app is expected to miss it; this only
measures.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _app_server import (AppServer, AppStartError, RssSampler, close_quietly, command_line, connect,  # noqa: E402
                         hwm_mb, smaps_rollup_mb, stream_train, train_args, train_defaults, tree_rss_mb)

TARGET_GROWTH_MB = 100.0
AFTER = 10  # growth is measured from after this visitor to the end

SUBJECTS = ["the film", "this movie", "the story", "the cast", "the ending", "the soundtrack", "the director",
            "the script", "every scene", "the sequel", "the lead actor", "the camera work", "the dialogue",
            "the plot", "the pacing", "the final act", "the premise", "the setting", "the villain", "the score"]
VERBS = ["was", "felt", "seemed", "turned out", "is", "looked", "sounded", "came across as", "remained", "grew"]
ADVERBS = ["truly", "rather", "quite", "utterly", "surprisingly", "mostly", "really", "simply", "oddly", "deeply"]
POSITIVE = ["wonderful", "moving", "brilliant", "delightful", "charming", "gripping", "superb", "funny", "fresh",
            "beautiful", "clever", "touching", "memorable", "stunning", "warm", "inspired"]
NEGATIVE = ["dull", "boring", "clumsy", "awful", "tedious", "flat", "lifeless", "predictable", "messy", "bland",
            "painful", "forgettable", "shallow", "confusing", "cheap", "tiresome"]
TAILS = ["from start to finish", "for most of its running time", "in the best way", "despite the hype",
         "on a second viewing", "for a family night", "compared to the book", "by the last scene", "overall",
         "if you ask me", "and everyone noticed", "in every sense", "at least to me", "all the way through"]


def synthetic_rows(visitor: int, rows: int, seed: int = 0) -> list[tuple[str, str]]:
    """`rows` labelled sentences (text, "positive"/"negative"), deterministic for (seed, visitor)."""
    rng = random.Random(1_000_003 * (seed + 1) + visitor)
    out = []
    for _ in range(rows):
        positive = rng.random() < 0.5
        words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(ADVERBS),
                 rng.choice(POSITIVE if positive else NEGATIVE)]
        if rng.random() < 0.5:
            words += ["and", rng.choice(POSITIVE if positive else NEGATIVE)]
        words.append(rng.choice(TAILS))
        text = " ".join(words)
        out.append((text[0].upper() + text[1:] + rng.choice([".", "!", "..."]),
                    "positive" if positive else "negative"))
    return out


def write_dataset(folder: Path, visitor: int, rows: int, seed: int = 0) -> Path:
    path = folder / f"visitor{visitor:03d}.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(synthetic_rows(visitor, rows, seed))
    return path


def upload_endpoint(client) -> Any:
    """The api_name of the Train tab's file-upload event (found from the config, by its trigger)."""
    config = client.config
    components = {c["id"]: c for c in config.get("components", [])}
    for dep in config.get("dependencies", []):
        targets = dep.get("targets") or []
        if any(t[1] == "upload" and components.get(t[0], {}).get("type") == "file" for t in targets):
            name = dep.get("api_name")
            if name:
                return "/" + name.lstrip("/")
            return dep.get("id")
    return "/uploaded"


def visit(url: str, k: int, csv_path: Path, defaults: dict, steps: int, timeout: float,
          model: Optional[str] = None) -> tuple[dict, Any]:
    """One visitor: connect, upload, train; returns (record, client) with the client still open."""
    from gradio_client import handle_file

    rec: dict[str, Any] = {"visitor": k, "csv_bytes": csv_path.stat().st_size,
                           "csv_sha1": hashlib.sha1(csv_path.read_bytes()).hexdigest()[:12], "error": None}
    client = connect(url)
    try:
        endpoint = upload_endpoint(client)
        rec["upload_endpoint"] = endpoint
        start = time.perf_counter()
        kwargs = {"api_name": endpoint} if isinstance(endpoint, str) else {"fn_index": endpoint}
        result = client.predict(handle_file(str(csv_path)), **kwargs)
        rec["upload_s"] = round(time.perf_counter() - start, 3)
        text = result[-1] if isinstance(result, (list, tuple)) else str(result)
        rec["upload_status"] = str(text)[:200]
        if "Loaded" not in str(text):
            rec["error"] = f"upload not accepted: {str(text)[:200]}"
            return rec, client
        args = train_args(defaults, task="uploaded", steps=steps, model=model)
        train = stream_train(client, args, time.perf_counter() + timeout)
        rec.update({f"train_{key}": train[key] for key in ("t_first_update", "t_let_in", "t_first_step", "t_done",
                                                          "final_state", "refused", "waited")})
        rec["steps"] = train["steps"]
        if train.get("error"):
            rec["error"] = train["error"]
    except Exception as exc:  # noqa: BLE001 - a failed visitor is recorded, the soak goes on
        rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
    return rec, client


def soak(visitors: int, rows: int, steps: int, timeout: float, settle: float, heartbeat: float, leave: str,
         extra_env: dict[str, str], start_timeout: float, seed: int = 0, model: Optional[str] = None,
         log=print) -> dict[str, Any]:
    env = dict(extra_env)
    if heartbeat > 0:
        env.setdefault("GRADIO_HEARTBEAT_INTERVAL", f"{heartbeat:g}")
    out: dict[str, Any] = {"visitors": visitors, "rows": rows, "steps": steps, "model": model, "leave": leave, "settle_s": settle,
                           "loadavg_start": os.getloadavg(), "per_visitor": []}
    data_dir = Path(tempfile.mkdtemp(prefix="qgoft-soak-data-"))
    abandoned: list[Any] = []
    try:
        with AppServer(env, timeout=start_timeout) as server, RssSampler(server.pid) as sampler:
            out["server_env"] = server.shown_env()
            out["ready_s"] = round(server.ready_seconds or 0.0, 2)
            out["rss_start_mb"] = round(tree_rss_mb(server.pid), 1)
            log(f"app ready in {out['ready_s']} s on {server.url} (pid {server.pid}), RSS {out['rss_start_mb']:.0f} MB")
            probe = connect(server.url)
            defaults = train_defaults(probe)
            close_quietly(probe)
            for k in range(1, visitors + 1):
                csv_path = write_dataset(data_dir, k, rows, seed)
                started = time.perf_counter()
                rec, client = visit(server.url, k, csv_path, defaults, steps, timeout, model)
                if leave == "close":
                    close_quietly(client)
                else:
                    abandoned.append(client)
                csv_path.unlink()
                time.sleep(settle)
                rec["visit_s"] = round(time.perf_counter() - started, 3)
                rec["rss_mb"] = round(tree_rss_mb(server.pid), 1)
                rollup = smaps_rollup_mb(server.pid)
                rec["anonymous_mb"] = rollup.get("Anonymous")
                rec["gradio_temp_mb"] = round(server.temp_dir_mb(), 2)
                out["per_visitor"].append(rec)
                log(f"visitor {k:3d}: {rows} rows, upload {rec.get('upload_s')} s, {rec.get('steps', 0)} steps done "
                    f"after {rec.get('train_t_done')} s -> RSS {rec['rss_mb']:.0f} MB (Anonymous "
                    f"{rec['anonymous_mb']} MB)" + (f"  ERROR {rec['error']}" if rec["error"] else ""))
            out["peak_rss_mb"] = round(sampler.peak_mb, 1)
            out["server_vmhwm_mb"] = round(hwm_mb(server.pid), 1)
            out["smaps_rollup_end_mb"] = smaps_rollup_mb(server.pid)
            out["gradio_temp_end_mb"] = round(server.temp_dir_mb(), 2)
            for client in abandoned:
                close_quietly(client)
            if server.process is not None and server.process.poll() is not None:
                out["server_exit"] = server.process.returncode
                out["server_log_tail"] = server.log_tail()
    finally:
        for client in abandoned:
            close_quietly(client)
        for path in data_dir.glob("*"):
            path.unlink()
        data_dir.rmdir()
    rss = [r["rss_mb"] for r in out["per_visitor"]]
    out["rss_after_first_mb"] = rss[0] if rss else None
    out["rss_after_10_mb"] = rss[AFTER - 1] if len(rss) >= AFTER else None
    out["rss_end_mb"] = rss[-1] if rss else None
    out["growth_after_first_mb"] = round(rss[-1] - rss[0], 1) if rss else None
    out["growth_after_10_mb"] = round(rss[-1] - rss[AFTER - 1], 1) if len(rss) > AFTER else None
    out["target_growth_mb"] = TARGET_GROWTH_MB
    out["meets_target"] = None if out["growth_after_10_mb"] is None else out["growth_after_10_mb"] < TARGET_GROWTH_MB
    out["errors"] = sum(1 for r in out["per_visitor"] if r.get("error"))
    out["loadavg_end"] = os.getloadavg()
    return out


def table(out: dict[str, Any]) -> str:
    lines = ["| visitor | steps | wait for steps (s) | upload (s) | RSS (MB) | Anonymous (MB) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in out["per_visitor"]:
        lines.append(f"| {r['visitor']} | {r.get('steps', 0)} | {r.get('train_t_done', '–')} | "
                     f"{r.get('upload_s', '–')} | {r['rss_mb']:.0f} | {r.get('anonymous_mb', '–')} |")
    return "\n".join(lines)


def summary(out: dict[str, Any]) -> str:
    g10 = out["growth_after_10_mb"]
    verdict = ("not measured (fewer than 11 visitors)" if g10 is None else
               f"{g10:+.0f} MB -> {'meets' if out['meets_target'] else 'MISSES'} the target "
               f"(< {out['target_growth_mb']:.0f} MB)")
    return (f"RSS of the server tree: start {out['rss_start_mb']:.0f} MB, after visitor 1 "
            f"{out['rss_after_first_mb']} MB, end {out['rss_end_mb']} MB, peak {out['peak_rss_mb']:.0f} MB\n"
            f"growth after visitor 1: {out['growth_after_first_mb']} MB; growth after visitor {AFTER}: {verdict}\n"
            f"server smaps_rollup at the end: Anonymous {out['smaps_rollup_end_mb'].get('Anonymous')} MB, "
            f"Rss {out['smaps_rollup_end_mb'].get('Rss')} MB; Gradio upload folder {out['gradio_temp_end_mb']} MB; "
            f"visitors with errors: {out['errors']}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--visitors", type=int, default=30, help="visitors, one after another (default 30)")
    parser.add_argument("--rows", type=int, default=4000, help="rows of each visitor's data set (default 4000)")
    parser.add_argument("--steps", type=int, default=2, help="steps each visitor trains (default 2)")
    parser.add_argument("--model", default=None, help="model (default: the page's default); e.g. a local "
                        "folder for a quick smoke test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data sets (each visitor adds its number)")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds after a visitor leaves before sampling (default: heartbeat + 1)")
    parser.add_argument("--heartbeat", type=float, default=2.0,
                        help="GRADIO_HEARTBEAT_INTERVAL of the app: how soon it notices a closed client "
                             "(Gradio's default is 15; 0 keeps it)")
    parser.add_argument("--leave", choices=("close", "abandon"), default="close",
                        help="close: client.close() (the app's unload frees the visitor); abandon: never close")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one visitor's training may take")
    parser.add_argument("--start-timeout", type=float, default=300, help="seconds the app may take to answer")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra variable for the app (e.g. QGOFT_IDLE_MINUTES=1); repeatable")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    if args.visitors < 1 or args.rows < 20 or args.steps < 1:
        parser.error("--visitors >= 1, --rows >= 20, --steps >= 1")
    env = {}
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    settle = args.settle if args.settle is not None else (args.heartbeat if args.heartbeat > 0 else 15.0) + 1.0

    command = command_line()
    print(f"command: {command}", flush=True)
    try:
        out = soak(args.visitors, args.rows, args.steps, args.timeout, settle, args.heartbeat, args.leave, env,
                   args.start_timeout, args.seed, args.model, log=lambda s: print(s, flush=True))
    except AppStartError as exc:
        print(f"the app did not start: {exc}", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"command": command, "error": str(exc)[-2000:]}, indent=1))
        return 2
    out = {"command": command, "cpu_count": os.cpu_count(), **out}
    print(table(out))
    print(summary(out), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
