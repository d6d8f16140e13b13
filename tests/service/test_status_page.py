#!/usr/bin/python3
"""kilnd's status page in a real browser: a real kilnd on a free loopback port, headless Chromium
driven by Selenium (Debian's chromium, chromium-driver and python3-selenium).

The page must load with no console error, show the service's own numbers (checked against
GET /v1/status) and show them change after this test registers kernels and launches through the
HTTP API, render the topology as an <svg>, say "no GPU" with kilnd's reason on a machine without
one (and list the refused launch with kiln's explanation and hint among the last failures), and
show service text as text (a compile error quoting <b id="xss"> makes no element). A screenshot is
saved to --artifacts/status_page.png.

Exit status: 0 passed, 1 failed, 77 skipped (no chromium, chromedriver or selenium), unless
KILN_REQUIRE_BROWSER=1 (set by .ci/run), when a missing browser is a failure.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SKIP = 77
TOKEN = "status-page-token-0123456789abcdef"
DEADLINE_S = 30  # every wait for the page polls until this, never sleeps a fixed time

NOOP = 'extern "C" __global__ void noop(int n) { }'
# The same source twice is a memory-tier hit the second time; a comment makes another key.
NOOP_OTHER = 'extern "C" __global__ void noop(int n) { /* another */ }'
BROKEN = 'extern "C" __global__ void broken(int n) { <b id="xss">x</b> }'


def unavailable(reason):
    if os.environ.get("KILN_REQUIRE_BROWSER") == "1":
        print(f"FAIL: {reason} (KILN_REQUIRE_BROWSER=1: install chromium chromium-driver python3-selenium)")
        sys.exit(1)
    print(f"SKIP: {reason} (install chromium chromium-driver python3-selenium)")
    sys.exit(SKIP)


def find_browser():
    try:
        import selenium  # noqa: F401
    except ImportError as e:
        unavailable(f"python3-selenium is missing for {sys.executable}: {e}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if not chromium:
        unavailable("no chromium on PATH")
    if not driver:
        unavailable("no chromedriver (Debian's chromium-driver)")
    return chromium, driver


class Kilnd:
    """kilnd --port 0 with a tokens file (mode 600) and its own cache folder."""

    def __init__(self, binary, folder):
        tokens = os.path.join(folder, "tokens")
        with open(tokens, "w") as f:
            f.write(f"alice {TOKEN}\n")
        os.chmod(tokens, 0o600)
        self.process = subprocess.Popen(
            [binary, "--port", "0", "--tokens", tokens, "--cache-dir", os.path.join(folder, "cache")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.transcript = []
        port = None
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.transcript.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:([0-9]+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            self.stop()
            raise AssertionError("kilnd did not start:\n" + "".join(self.transcript))
        # Keep reading its output so it never blocks on a full pipe.
        threading.Thread(target=lambda: self.transcript.extend(self.process.stdout), daemon=True).start()
        self.base = f"http://127.0.0.1:{port}"

    def request(self, method, path, body=None, token=TOKEN):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return res.status, dict(res.headers), res.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None):
        status, headers, raw = self.request(method, path, body)
        return status, headers, json.loads(raw)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kilnd", required=True)
    parser.add_argument("--artifacts", required=True)
    args = parser.parse_args()
    chromium, chromedriver = find_browser()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.makedirs(args.artifacts, exist_ok=True)
    screenshot = os.path.join(args.artifacts, "status_page.png")
    with tempfile.TemporaryDirectory(prefix="kiln-status-page-") as folder:
        kilnd = Kilnd(args.kilnd, folder)
        driver = None
        try:
            # The shell and its files need no token, and carry the policy that forbids outside sources.
            status, headers, page = kilnd.request("GET", "/", token=None)
            check(status == 200 and b"<html" in page, f"GET / answered {status}")
            csp = headers.get("Content-Security-Policy", "")
            check("default-src 'none'" in csp and "script-src 'self'" in csp, f"GET /: Content-Security-Policy is '{csp}'")
            check(headers.get("Content-Type", "").startswith("text/html"), headers)
            status, _, _ = kilnd.request("GET", "/v1/status", token=None)
            check(status == 401, f"GET /v1/status without a token answered {status}")

            options = webdriver.ChromeOptions()
            options.binary_location = chromium
            for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,2000", "--no-first-run", "--disable-extensions"):
                options.add_argument(flag)
            options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
            driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
            driver.set_page_load_timeout(DEADLINE_S)
            wait = WebDriverWait(driver, DEADLINE_S, poll_frequency=0.2)

            driver.get(kilnd.base + "/")
            text = lambda id_: driver.find_element(By.ID, id_).text
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.ID, "connect").click()
            wait.until(lambda d: text("updated") not in ("", "–"), "the page never showed GET /v1/status's data")

            _, _, api = kilnd.json("GET", "/v1/status")
            check(text("node") == api["node"], f"node: page '{text('node')}', API '{api['node']}'")
            number = lambda id_: int(text(id_))
            kernels0, misses0, hits0 = number("kernels-registered"), number("cache-misses"), number("cache-memory-hits")
            completed0 = number("launches-completed")
            check(kernels0 == api["kernels"]["registered"] == 0, f"kernels: page {kernels0}, API {api['kernels']}")
            check(misses0 == api["cache"]["misses"], f"misses: page {misses0}, API {api['cache']}")

            # The topology: an <svg> in the page, kiln's picture or its "no topology" notice.
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#topology svg"), "no <svg> in #topology")
            svg_text = driver.find_element(By.CSS_SELECTOR, "#topology svg").text
            if not api["topology"]["available"]:
                check("No topology to show" in svg_text, f"the no-topology picture says '{svg_text}'")
                expected = "No GPU" if not api["gpu"]["available"] else api["topology"]["reason"].split()[0]
                check(expected in text("topology-reason"), f"topology reason: page '{text('topology-reason')}'")
            else:
                check(driver.find_elements(By.CSS_SELECTOR, "#topology svg text"), "the topology picture has no labels")

            no_gpu = driver.find_element(By.ID, "no-gpu")
            if not api["gpu"]["available"]:
                check(no_gpu.is_displayed(), "no GPU here, and the page does not say so")
                reason = api["gpu"]["reason"]
                check(reason and text("no-gpu-reason").split() == reason.split(),
                      f"no-GPU reason: page '{text('no-gpu-reason')}', API '{reason}'")
                check(not driver.find_elements(By.CSS_SELECTOR, "#devices tr.device") and "no GPU" in text("devices"),
                      text("devices"))
            else:
                check(not no_gpu.is_displayed(), "the page says no GPU on a machine with one")
                check(len(driver.find_elements(By.CSS_SELECTOR, "#devices tr.device")) == len(api["devices"]), text("devices"))

            # Work through the HTTP API; the page must follow.
            status, _, k = kilnd.json("POST", "/v1/kernels", {"source": NOOP})
            check(status == 201, f"registration answered {status}: {k}")
            wait.until(lambda d: number("kernels-registered") == kernels0 + 1 and number("cache-misses") == misses0 + 1,
                       "the page did not show the registered kernel and the cache miss")
            status, _, again = kilnd.json("POST", "/v1/kernels", {"source": NOOP})
            check(status == 201, f"second registration answered {status}: {again}")
            wait.until(lambda d: number("kernels-registered") == kernels0 + 2 and number("cache-memory-hits") > hits0,
                       "the page did not show the memory-tier hit")
            check(text("cache-hit-rate").endswith("%"), f"hit rate '{text('cache-hit-rate')}'")

            status, headers, launched = kilnd.json(
                "POST", "/v1/launches",
                {"kernel": k["id"], "function": "noop", "arguments": [{"type": "i32", "value": 1}], "wait": True})
            launch_id = headers.get("X-Request-Id", "")
            if api["gpu"]["available"]:
                check(status == 200, f"launch answered {status}: {launched}")
                wait.until(lambda d: number("launches-completed") == completed0 + 1, "the page did not count the launch")
                wait.until(lambda d: text("latency-p50").endswith("ms"), "no latency percentiles after a launch")
            else:
                check(status == 503 and launched["error"]["code"] == "no_gpu", f"launch answered {status}: {launched}")
                # Refused with the reason, which the last failures show with kiln's explanation and hint.
                def refused(d):
                    for li in d.find_elements(By.CSS_SELECTOR, "#failures li.failure"):
                        t = li.text
                        if launch_id in t and "KILN_ERROR_DRIVER_NOT_FOUND" in t and "Hint:" in t:
                            return li
                    return None
                li = wait.until(refused, "the refused launch is not among the last failures")
                _, _, api = kilnd.json("GET", "/v1/status")
                failure = next(f for f in api["failures"] if f["request_id"] == launch_id)
                check(failure["explanation"] and failure["explanation"] in li.text, li.text)
                check(failure["hint"].split()[:6] == li.find_element(By.CSS_SELECTOR, ".hint").text.split()[1:7], li.text)

            # A compile error quoting markup: shown as text, no element made from it.
            status, _, broken = kilnd.json("POST", "/v1/kernels", {"source": BROKEN})
            check(status == 422, f"broken kernel answered {status}: {broken}")
            wait.until(lambda d: "KILN_ERROR_COMPILE_FAILED" in text("failures") and '<b id="xss">' in text("failures"),
                       "the compile failure is not shown (as text)")
            check(not driver.find_elements(By.ID, "xss"), "service text became markup")
            status, _, other = kilnd.json("POST", "/v1/kernels", {"source": NOOP_OTHER})
            check(status == 201, other)
            wait.until(lambda d: number("kernels-registered") == kernels0 + 3, "the third kernel is not counted")

            # The page's numbers are the API's.
            _, _, api = kilnd.json("GET", "/v1/status")
            wait.until(lambda d: number("cache-misses") == api["cache"]["misses"], "misses differ from the API's")
            check(number("kernels-registered") == api["kernels"]["registered"], "kernels differ from the API's")
            check(number("queue-normal") == api["queue"]["depth"]["normal"], "queue depth differs from the API's")

            driver.save_screenshot(screenshot)
            check(os.path.getsize(screenshot) > 10000, f"{screenshot} is suspiciously small")
            print(f"screenshot: {screenshot}")

            errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            check(not errors, "console errors:\n" + "\n".join(json.dumps(e) for e in errors))
        except Exception:
            if driver:
                try:
                    driver.save_screenshot(screenshot)
                    print(f"screenshot (at the failure): {screenshot}")
                    print("console:\n" + "\n".join(json.dumps(e) for e in driver.get_log("browser")))
                except Exception as e:
                    print(f"no screenshot: {e}")
            print("kilnd's output:\n" + "".join(kilnd.transcript))
            raise
        finally:
            if driver:
                driver.quit()
            kilnd.stop()
    print("PASS: the status page shows kilnd's live numbers")


if __name__ == "__main__":
    main()
