"""make screenshot: docs/status-page.png, the status page of the demo under some traffic.

Serves the demo models (fashion: images, fashion_tensor: JSON tensors) on free loopback
ports with 1 s samples, sends about 75 s of varying traffic (a few bad requests among it),
scales fashion to 2 workers, then photographs GET /status in Debian's headless chromium
through its chromedriver (nothing is downloaded). Bounded: it stops by itself."""
import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "examples/fashion/samples").glob("*.png"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def traffic(port, seconds, stop, seed):
    """Requests at a rate that rises and falls (1 to ~25 a second per thread), and a bad
    one now and then (400s for the errors table)."""
    images = [p.read_bytes() for p in SAMPLES]
    tensor = json.loads((ROOT / "examples/fashion/sample.json").read_text())
    rnd = random.Random(seed)
    start = time.time()
    while not stop.is_set() and time.time() - start < seconds:
        phase = (time.time() - start) / seconds
        rate = 1 + 12 * (1 + math.sin(phase * 3 * math.pi))
        r = rnd.random()
        if r < 0.003:
            call(port, "POST", "/predictions/fashion", b"not an image")
        elif r < 0.006:
            call(port, "POST", "/predictions/fashion_tensor", json.dumps([[0.5] * 28]),
                 {"Content-Type": "application/json"})
        elif r < 0.3:
            call(port, "POST", "/predictions/fashion_tensor", json.dumps(tensor),
                 {"Content-Type": "application/json"})
        else:
            call(port, "POST", "/predictions/fashion", rnd.choice(images))
        time.sleep(1 / rate)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wick", default=str(ROOT / "build/wick"))
    ap.add_argument("--store", default=str(ROOT / "build/demo/model_store"))
    ap.add_argument("--out", default=str(ROOT / "docs/status-page.png"))
    ap.add_argument("--seconds", type=float, default=75)
    args = ap.parse_args()
    for p in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(p).is_file():
            sys.exit(f"screenshot: {p} is missing (make deps installs chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ports = {k: free_port() for k in ("inference", "management", "metrics", "grpc", "grpc_mgmt")}
    tmp = Path(tempfile.mkdtemp(prefix="wick-screenshot-"))
    log = open(tmp / "wick.log", "wb")
    server = subprocess.Popen(
        [args.wick, "serve", "--model-store", args.store,
         "--models", "fashion=fashion.mar", "fashion_tensor=fashion_tensor.mar",
         "--inference_address", f"http://127.0.0.1:{ports['inference']}",
         "--management_address", f"http://127.0.0.1:{ports['management']}",
         "--metrics_address", f"http://127.0.0.1:{ports['metrics']}",
         "--grpc_inference_port", str(ports["grpc"]), "--grpc_management_port", str(ports["grpc_mgmt"]),
         "--enable_model_api", "true", "--status_interval_ms", "1000", "--quiet"],
        stdout=log, stderr=subprocess.STDOUT)
    driver = None
    stop, senders = threading.Event(), []
    try:
        deadline = time.time() + 60
        while True:
            try:
                if call(ports["inference"], "GET", "/ping")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                sys.exit("screenshot: wick did not start:\n" + (tmp / "wick.log").read_text()[-2000:])
            time.sleep(0.1)
        status, body = call(ports["management"], "PUT",
                            "/models/fashion/1.0?min_worker=2&max_worker=2&synchronous=true")
        assert status == 200, body
        # the picture is taken while the traffic still runs, so that "now" shows it
        senders = [threading.Thread(target=traffic, args=(ports["inference"], args.seconds + 30, stop, i))
                   for i in range(2)]
        for t in senders:
            t.start()
        time.sleep(args.seconds)

        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,900", "--hide-scrollbars", "--no-first-run",
                  f"--user-data-dir={tmp / 'chromium'}"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.get(f"http://127.0.0.1:{ports['management']}/status")
        deadline = time.time() + 20
        while not driver.execute_script("return document.querySelectorAll('article.model').length >= 2"):
            if time.time() > deadline:
                sys.exit("screenshot: the page showed no models")
            time.sleep(0.1)
        time.sleep(0.5)
        # the whole page, at the width of a laptop's window
        height, chrome = driver.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
        driver.set_window_size(1280, min(max(height, 900), 2400) + chrome)
        time.sleep(0.3)
        driver.save_screenshot(args.out)
        print(f"screenshot: wrote {os.path.relpath(args.out)}")
    finally:
        stop.set()
        for t in senders:
            t.join()
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


if __name__ == "__main__":
    main()
