"""`python -m webtest.load [--sessions 1 4 16] [--runs 3]`: N browser sessions at once against one server.
`python -m webtest.load --first-paint [--runs 3]`: how soon a visitor can choose a picture.

For each N, --runs times, a fresh server starts; N Chromium sessions (separate browser contexts, so separate
Streamlit sessions) open the page, then all upload a different 1024 px illustration from
`../shared/data/scenes` at the same moment and wait for its result. Printed per N: time to
result (p50, p95) seen by the browsers, errors, the server's peak resident memory, the server's
own time per image (from the page's log lines), and how many times the model was loaded.
The browsers share the machine's cores with the server, so both times matter. Each figure is
the median over the runs.

With --first-paint, per fresh server: seconds from the server accepting connections to the
uploader showing in the first visitor's page, then in 5 new sessions one after another on the
now warm server (their median), then in 16 sessions opening the page at once (their p95); and
the server's own share of the first visit, from the page's log (how far into its first script
run it had sent the uploader).
"""

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from measure.bench import machine
from animerec.paths import data_dir
from webtest.server import CHROMIUM, CHROMIUM_ARGS, serve

ANALYSED = re.compile(r"analysed an image of \d+ bytes in (\d+) ms")
UPLOADER_SENT = re.compile(r"sent the uploader (\d+) ms into the script run")
UPLOADER = "[data-testid=stMain] [data-testid=stFileUploader]"


def pick_images(count, folder):
    """`count` different scene images whose longer side is 1024 px."""
    chosen = [p for p in sorted(folder.glob("*.jpg")) if max(Image.open(p).size) == 1024][:count]
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} images of 1024 px in {folder}; need {count}")
    return chosen


async def one_session(browser, url, image, ready, start, timeout_s):
    """Open the page, wait at the start line, upload, and return seconds to the result."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.wait_for_selector("input[type=file]", state="attached", timeout=timeout_s * 1000)
        ready.release()
        await start.wait()
        began = time.perf_counter()
        await page.locator("[data-testid=stMain] input[type=file]").first.set_input_files(str(image))
        await page.get_by_text(re.compile(rf"^{re.escape(image.name)}: \d+ faces?$")).wait_for(timeout=timeout_s * 1000)
        elapsed = time.perf_counter() - began
        errors = await page.locator("[data-testid=stAlertContentError]").count()
        return elapsed if not errors else None
    except PlaywrightTimeout:
        return None
    finally:
        await context.close()


async def run_sessions(url, images, timeout_s):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ready, start = asyncio.Semaphore(0), asyncio.Event()
        tasks = [asyncio.create_task(one_session(browser, url, image, ready, start, timeout_s)) for image in images]
        try:  # every page open, then all uploads at once
            await asyncio.wait_for(asyncio.gather(*(ready.acquire() for _ in images)), timeout_s)
        except asyncio.TimeoutError:
            pass  # the sessions that could not open count as errors
        start.set()
        results = await asyncio.gather(*tasks)
        await browser.close()
    return results


async def time_to_uploader(browser, url, timeout_s):
    """Seconds from opening the page in a new session to its uploader showing."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        began = time.perf_counter()
        await page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        await page.wait_for_selector(UPLOADER, state="visible", timeout=timeout_s * 1000)
        return time.perf_counter() - began
    finally:
        await context.close()


async def first_paints(url, timeout_s, warm_visits=5, burst=16):
    """(first visit, [warm visits one by one], [burst of visits at once]) in seconds."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first = await time_to_uploader(browser, url, timeout_s)
        # The first visit's script run goes on loading the model after the uploader is sent:
        # a warm server is one that has finished it.
        page = await browser.new_page()
        await page.goto(url, timeout=timeout_s * 1000)
        await page.wait_for_selector("[data-testid=stSidebar]", timeout=timeout_s * 1000)
        await page.close()
        warm = [await time_to_uploader(browser, url, timeout_s) for _ in range(warm_visits)]
        together = await asyncio.gather(*(time_to_uploader(browser, url, timeout_s) for _ in range(burst)))
        await browser.close()
    return first, warm, list(together)


def first_paint_run(timeout_s):
    """One fresh server: its first-paint figures as a dict. The clock starts once the server
    accepts connections (`serve` returns then)."""
    with tempfile.TemporaryDirectory() as tmp, serve(log_path=Path(tmp) / "server.log") as server:
        first, warm, burst = asyncio.run(first_paints(server.url, timeout_s))
        sent = [int(m) for m in UPLOADER_SENT.findall(server.log())]
    return {"first": first, "warm": statistics.median(warm), "burst_p95": percentile(burst, 0.95),
            "server_share": sent[0] / 1000 if sent else float("nan")}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def one_run(images, timeout_s):
    """One fresh server, len(images) sessions at once: their figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp, serve(log_path=Path(tmp) / "server.log") as server:
        results = asyncio.run(run_sessions(server.url, images, timeout_s))
        peak = server.peak_memory_mb()
        log = server.log()
    times = [r for r in results if r is not None]
    server_ms = [int(m) for m in ANALYSED.findall(log)]
    return {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "errors": len(results) - len(times),
            "peak": peak, "server_p50": statistics.median(server_ms) if server_ms else float("nan"),
            "server_p95": percentile(server_ms, 0.95), "loads": log.count("model load")}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m webtest.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--runs", type=int, default=3, help="fresh servers per N; the table shows medians over them")
    parser.add_argument("--timeout", type=int, default=180, help="seconds a session may wait for its result")
    parser.add_argument("--first-paint", action="store_true", help="time the uploader's first showing instead")
    args = parser.parse_args(argv)
    if args.first_paint:
        print(f"{machine()}; browser and server on the same machine; medians over {args.runs} fresh servers")
        print("| first visit to a fresh server (s) | of which the server's first script run (s) | "
              "new session on a warm server, median of 5 (s) | 16 sessions at once, p95 (s) |")
        print("|---|---|---|---|")
        runs = [first_paint_run(args.timeout) for _ in range(args.runs)]
        median = lambda key: statistics.median(run[key] for run in runs)  # noqa: E731
        print(f"| {median('first'):.1f} | {median('server_share'):.1f} | {median('warm'):.1f} | "
              f"{median('burst_p95'):.1f} |", flush=True)
        return 0
    images = pick_images(max(args.sessions), data_dir() / "scenes")
    print(f"{machine()}; browsers and server on the same machine; each session uploads a different 1024 px image")
    print(f"medians over {args.runs} fresh servers per row; errors summed over them")
    print("| sessions | time to result p50 (s) | p95 (s) | errors | server peak memory (MB) | "
          "server ms per image p50 | p95 | model loads |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sessions:
        runs = [one_run(images[:n], args.timeout) for _ in range(args.runs)]
        median = lambda key: statistics.median(run[key] for run in runs)  # noqa: E731
        print(f"| {n} | {median('p50'):.1f} | {median('p95'):.1f} | {sum(run['errors'] for run in runs)} | "
              f"{median('peak'):.0f} | {median('server_p50'):.0f} | {median('server_p95'):.0f} | "
              f"{max(run['loads'] for run in runs)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
