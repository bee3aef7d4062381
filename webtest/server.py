"""Start the page with `streamlit run` on 127.0.0.1 and drive it with Debian's Chromium."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ANIMEREC_CHROMIUM", "/usr/bin/chromium")
# Playwright cannot download its own browser here: launch Debian's, with nothing phoning home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `streamlit run streamlit_app.py`: its URL, process and log file."""

    def __init__(self, url, process, log_path):
        self.url, self.process, self.log_path = url, process, Path(log_path)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def peak_memory_mb(self):
        """The server's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextlib.contextmanager
def serve(app_dir=ROOT, log_path=None, env=None, timeout=180):
    """Run the page from `app_dir` on a free loopback port until the block ends."""
    port = free_port()
    log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"animerec-server-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=app_dir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the page did not start: {Path(log_path).read_text()[-2000:]}")
                time.sleep(0.5)
        yield Server(url, process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def chromium_available():
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None


def launch(playwright, extra_args=()):
    """Headless Debian Chromium through Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(extra_args))


def upload_and_wait(page, files, timeout=180_000):
    """Upload files in the Upload tab and wait until the page has answered for all of them: each
    file's result starts "NAME: ", the caption under its picture or the error saying why not."""
    page.locator("[data-testid=stMain] input[type=file]").first.set_input_files([str(f) for f in files])
    for f in files:
        page.get_by_text(re.compile("^" + re.escape(Path(f).name) + ": ")).first.wait_for(timeout=timeout)
    wait_idle(page, timeout)


def wait_idle(page, timeout=180_000):
    """Wait until Streamlit has finished the current run (no running-man status widget)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.wait_for_timeout(300)
