"""How fast the app is ready: `python app.py` to the first HTTP 200 of "/", then (over the API)
pressing Train to the first streamed update that carries a chart.

    python benchmarks/app_startup.py            # both numbers, on a free local port
    python benchmarks/app_startup.py --no-train # page ready only

The chart number is measured at the client, so it includes the network round trip but not the
browser's drawing (the browser test prints that one: tests/browser/test_app_browser.py).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_200(url: str, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def first_chart_seconds(url: str) -> float:
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        start = time.perf_counter()
        job = client.submit("sentence-transformers/all-MiniLM-L6-v2", "sentiment", "qgoft", "none", "all", 0.01,
                            0.002, 16, 5, 0, api_name="/train")
        for outputs in job:
            chart = outputs[2]  # the loss-curve plot (outputs: status, run-info, loss plot, ...)
            if isinstance(chart, dict) and chart.get("plot"):  # not a "no change" update
                seconds = time.perf_counter() - start
                job.cancel()
                return seconds
        raise RuntimeError("the run ended without drawing a chart")
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-train", action="store_true", help="measure the page only")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--wait", type=float, nargs="*", default=[0.0, 15.0],
                        help="seconds between page ready and pressing Train, one fresh app per value "
                             "(0: at once; 15: a person reading the page while the start-up warm-up runs)")
    args = parser.parse_args()
    for wait in ([0.0] if args.no_train else args.wait):
        port = free_port()
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        url = f"http://127.0.0.1:{port}/"
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ready = wait_for_200(url, args.timeout)
            print(f"page ready (first HTTP 200 of /) after `python app.py`: {ready:.2f} s")
            if not args.no_train:
                time.sleep(wait)
                print(f"Train pressed {wait:g} s after the page was ready -> first streamed chart: "
                      f"{first_chart_seconds(url):.2f} s", flush=True)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
