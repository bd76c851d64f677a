#!/usr/bin/env python3
"""Check a built Jupyter Book in a real browser (headless Chromium), offline.

Serves the site from a local HTTP server (127.0.0.1, a free port) and loads every HTML page
in Debian's ``chromium`` through the DevTools protocol. A page fails on:

* a JavaScript exception or a ``console.error`` / ``console.assert`` message;
* a browser log entry of level error (e.g. "Failed to load resource: 404");
* a request that failed or answered >= 400, or any request to another host (the site must
  be self-contained: no CDN);
* an image that did not load, or an ``<img>`` without alt text;
* maths that MathJax did not typeset (``.math`` present but no ``mjx-container``, or
  ``mjx-merror``);
* a solution admonition (``.dropdown``) that is visible before the reader clicks it;
* an internal link (``<a href>``) to a file that does not exist, or to an anchor (``#id``)
  that the target page does not have.

Screenshots (full page, capped in height) of chosen pages go to a folder.

Only the Python standard library is used: a minimal RFC 6455 websocket client speaks the
DevTools protocol. Chromium is started with ``--remote-debugging-port=0`` and the port is
read from ``DevToolsActivePort`` in a fresh, empty profile directory.

Usage::

    python scripts/browser_check.py _build/html --screenshots _build/screenshots

Exit status 0 when every page passes, 1 otherwise, 2 when Chromium is not found.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import posixpath
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)
SKIP_DIRS = {"_static", "_sources", "_downloads", "_images", "plot_directive", "_sphinx_design_static"}
VIEWPORT = (1280, 900)


def find_chromium() -> str | None:
    """Return the path of a Chromium executable (``$CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


# ----------------------------------------------------------------------------- websocket
class WebSocket:
    """A minimal blocking websocket client (RFC 6455): text frames, masking, fragments."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + (f"?{u.query}" if u.query else "")
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake failed: {status[:200]!r}")
        self.buf = rest

    def _recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str) -> None:
        payload = text.encode("utf-8")
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack(">H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            if b1 & 0x80:
                mask = self._recv_exact(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._recv_exact(n)))
            else:
                data = self._recv_exact(n)
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:  # ping -> pong
                self.sock.sendall(bytes([0x8A, 0x80 | len(data)]) + b"\0\0\0\0" + data)
                continue
            if opcode in (0x1, 0x2, 0x0):
                message += data
                if fin:
                    return message.decode("utf-8")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class DevTools:
    """The DevTools protocol over one page target: commands and buffered events."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                raise TimeoutError(f"DevTools: no answer to {method} within {timeout} s") from None
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"DevTools {method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def pump(self, seconds: float) -> None:
        """Read events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.ws.sock.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                return
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if any(e["method"] == method for e in self.events):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.2))

    def evaluate(self, expression: str, timeout: float = 30.0):
        res = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                        returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")


# ----------------------------------------------------------------------------- server
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - silence the access log
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # the browser drops connections when it navigates on: not a problem of the site
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``site`` on 127.0.0.1 (a free port) in a daemon thread; return (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# ----------------------------------------------------------------------------- browser
def start_chromium(exe: str, profile: Path, timeout: float = 30.0) -> tuple[subprocess.Popen, int]:
    """Start headless Chromium with a DevTools port; return (process, port)."""
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
           f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise RuntimeError(f"chromium exited with status {proc.returncode}: {err}")
        if port_file.is_file():
            lines = port_file.read_text().split()
            if lines:
                return proc, int(lines[0])
        time.sleep(0.05)
    stop_chromium(proc)
    raise TimeoutError(f"chromium did not open a DevTools port within {timeout} s")


def stop_chromium(proc: subprocess.Popen) -> None:
    """Terminate the Chromium we started (its own process group), then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()


def page_target(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        targets = json.loads(r.read())
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        raise RuntimeError("chromium has no page target")
    return pages[0]["webSocketDebuggerUrl"]


# JavaScript run in each page after load: images (forced eager, awaited), links, ids, maths,
# solutions hidden.
PAGE_PROBE = r"""
(async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => (i.complete ? null : new Promise(r => {
      i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000); }))));
  const mathEls = document.querySelectorAll('.math, div.math, span.math');
  if (mathEls.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise, new Promise(r => setTimeout(r, 8000))]);
  }
  const visible = el => {
    const s = getComputedStyle(el);
    return s.display !== 'none' && s.visibility !== 'hidden' && parseFloat(s.opacity) > 0
           && el.getBoundingClientRect().height > 0;
  };
  const dropdowns = [...document.querySelectorAll('.admonition.dropdown, details.dropdown')];
  return {
    title: document.title,
    h1: (document.querySelector('main h1, article h1, h1') || {}).textContent || '',
    broken_images: imgs.filter(i => !i.complete || i.naturalWidth === 0)
                       .map(i => i.currentSrc || i.src),
    images: imgs.length,
    no_alt: imgs.filter(i => !(i.getAttribute('alt') || '').trim())
                .map(i => (i.currentSrc || i.src).slice(0, 120)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    names: [...document.querySelectorAll('a[name]')].map(e => e.getAttribute('name')),
    math: mathEls.length,
    mjx: document.querySelectorAll('mjx-container').length,
    mjx_errors: document.querySelectorAll('mjx-merror').length,
    solutions: dropdowns.length,
    solutions_open: dropdowns.filter(d => {
        if (d.tagName === 'DETAILS') return d.open;
        const body = [...d.children].filter(c => !c.classList.contains('admonition-title')
                                              && !c.classList.contains('toggle-button'));
        return body.some(visible);
    }).length,
    figures: document.querySelectorAll('figure, .kcbf-figure').length,
    tables: document.querySelectorAll('table').length,
    height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),
  };
})()
"""


@dataclass
class PageResult:
    path: str
    seconds: float
    info: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class Report:
    site: Path
    pages: list[PageResult]
    screenshots: list[Path]
    seconds: float
    browser: str

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(p.path, e) for p in self.pages for e in p.errors]

    def summary(self) -> str:
        lines = [f"browser check of {self.site}: {len(self.pages)} pages in {self.seconds:.1f} s "
                 f"({self.browser}); {len(self.errors)} problem(s)"]
        lines += [f"  {p}: {e}" for p, e in self.errors]
        if self.screenshots:
            lines.append(f"  screenshots: {self.screenshots[0].parent}/ "
                         f"({', '.join(s.name for s in self.screenshots)})")
        return "\n".join(lines)


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the site (relative POSIX paths), theme/asset folders excluded."""
    out = []
    for p in sorted(site.rglob("*.html")):
        rel = p.relative_to(site)
        if rel.parts and rel.parts[0] in SKIP_DIRS:
            continue
        out.append(rel.as_posix())
    return out


def _classify_events(events: list[dict], base: str) -> list[str]:
    errors = []
    requests = {}
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            requests[p.get("requestId")] = url
            if not url.startswith((base, "data:", "blob:", "about:", "chrome-extension:")):
                errors.append(f"request to another host (the site must be self-contained): {url}")
        elif m == "Network.responseReceived":
            status = p.get("response", {}).get("status", 0)
            if status >= 400:
                errors.append(f"HTTP {status}: {p['response'].get('url')}")
        elif m == "Network.loadingFailed":
            if p.get("canceled"):
                continue
            errors.append(f"failed to load {requests.get(p.get('requestId'), '?')}: {p.get('errorText')}")
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = (d.get("exception") or {}).get("description") or d.get("text")
            errors.append(f"JavaScript exception: {str(desc).splitlines()[0][:300]}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            errors.append(f"console.{p.get('type')}: {text[:300]}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            errors.append(f"browser log error: {entry.get('text', '')[:300]} {entry.get('url', '')}")
    # one line per distinct problem
    return list(dict.fromkeys(errors))


def _check_links(results: dict[str, PageResult], site: Path, base: str) -> None:
    ids = {path: set(r.info.get("ids", [])) | set(r.info.get("names", [])) for path, r in results.items()}
    for path, r in results.items():
        for href in r.info.get("links", []):
            if not href.startswith(base):
                continue  # external links are not followed (offline)
            u = urllib.parse.urlparse(href)
            target = urllib.parse.unquote(u.path)[1:]  # strip leading "/"
            target = posixpath.normpath(target) if target else ""
            file = site / target if target else site / "index.html"
            if target == "" or file.is_dir():
                file = file / "index.html"
                target = posixpath.join(target, "index.html") if target else "index.html"
            if not file.is_file():
                r.errors.append(f"broken link: {href} (no file {target})")
                continue
            if u.fragment and target in ids:
                frag = urllib.parse.unquote(u.fragment)
                if frag not in ids[target]:
                    r.errors.append(f"broken anchor: {href} (no id {frag!r} in {target})")


def check_site(site: str | Path, screenshot_dir: str | Path | None = None,
               screenshot_pages: list[str] | None = None, chromium: str | None = None,
               page_timeout: float = 20.0, max_screenshot_height: int = 16000,
               log=None) -> Report:
    """Load every page of ``site`` in headless Chromium and collect problems.

    Parameters
    ----------
    site : path
        The built ``_build/html`` folder.
    screenshot_dir : path, optional
        Where to save screenshots (created).
    screenshot_pages : list of str, optional
        Pages (relative paths, e.g. ``book/intro.html``) to screenshot; default: none.
    chromium : str, optional
        Chromium executable (default :func:`find_chromium`).
    page_timeout : float
        Seconds to wait for a page's load event.
    max_screenshot_height : int
        Full-page screenshots are cut at this height (px).
    """
    t0 = time.monotonic()
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site}: no index.html (build the book first)")
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium executable found (apt-get install chromium)")
    shots_wanted = set(screenshot_pages or [])
    if screenshot_dir is not None:
        screenshot_dir = Path(screenshot_dir)
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    server, base = serve(site)
    profile = Path(tempfile.mkdtemp(prefix="kcbf-chromium-"))
    proc = None
    results: dict[str, PageResult] = {}
    shots: list[Path] = []
    try:
        proc, port = start_chromium(exe, profile)
        version = ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=10) as r:
                version = json.loads(r.read()).get("Browser", "")
        except OSError:
            pass
        dt = DevTools(page_target(port))
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.call(f"{domain}.enable")
        dt.call("Network.setCacheDisabled", cacheDisabled=False)
        dt.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                deviceScaleFactor=1, mobile=False)
        for path in site_pages(site):
            t_page = time.monotonic()
            res = PageResult(path, 0.0)
            dt.events.clear()
            dt.call("Page.navigate", url=base + path)
            if not dt.wait_for("Page.loadEventFired", page_timeout):
                res.errors.append(f"no load event within {page_timeout} s")
            dt.pump(0.15)
            try:
                res.info = dt.evaluate(PAGE_PROBE, timeout=page_timeout) or {}
            except (RuntimeError, TimeoutError) as e:
                res.errors.append(f"page probe failed: {e}")
            dt.pump(0.1)  # late console messages / requests
            res.errors += _classify_events(dt.events, base)
            info = res.info
            if info:
                res.errors += [f"broken image: {src}" for src in info.get("broken_images", [])]
                res.errors += [f"image without alt text: {src}" for src in info.get("no_alt", [])]
                if info.get("math") and not info.get("mjx"):
                    res.errors.append(f"{info['math']} maths element(s) not typeset by MathJax")
                if info.get("mjx_errors"):
                    res.errors.append(f"{info['mjx_errors']} MathJax error(s)")
                if info.get("solutions_open"):
                    res.errors.append(f"{info['solutions_open']} solution(s) visible before a click")
            if path in shots_wanted and screenshot_dir is not None:
                # a viewport as tall as the page (capped), so sticky sidebars lay out as a
                # reader sees them, then back to the normal viewport
                height = min(int(info.get("height") or VIEWPORT[1]), max_screenshot_height)
                dt.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=height,
                        deviceScaleFactor=1, mobile=False)
                dt.pump(0.3)
                shot = dt.call("Page.captureScreenshot", timeout=60, format="png")
                dt.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                        deviceScaleFactor=1, mobile=False)
                out = screenshot_dir / (path.replace("/", "__").removesuffix(".html") + ".png")
                out.write_bytes(base64.b64decode(shot["data"]))
                shots.append(out)
            res.seconds = time.monotonic() - t_page
            results[path] = res
            if log:
                log(f"{path}: {len(res.errors)} problem(s), {res.seconds:.1f} s")
        _check_links(results, site, base)
        dt.ws.close()
    finally:
        if proc is not None:
            stop_chromium(proc)
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    return Report(site, list(results.values()), shots, time.monotonic() - t0,
                  version or Path(exe).name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("site", help="built site (_build/html)")
    ap.add_argument("--screenshots", metavar="DIR", default=None,
                    help="save screenshots here (default: <site>/../screenshots)")
    ap.add_argument("--shoot", metavar="PAGE", action="append", default=None,
                    help="page to screenshot (repeatable; default: the landing page and every "
                         "page under book/stages/)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print one line per page")
    args = ap.parse_args(argv)
    site = Path(args.site)
    if find_chromium() is None:
        print("browser_check: no chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    shoot = args.shoot or default_screenshot_pages(site)
    shots = Path(args.screenshots) if args.screenshots else site.parent / "screenshots"
    report = check_site(site, shots, shoot, log=print if args.verbose else None)
    print(report.summary())
    return 1 if report.errors else 0


def default_screenshot_pages(site: Path) -> list[str]:
    """The landing page and every stage chapter."""
    pages = site_pages(Path(site))
    return [p for p in pages if p == "book/intro.html" or p.startswith("book/stages/")]


if __name__ == "__main__":
    sys.exit(main())
