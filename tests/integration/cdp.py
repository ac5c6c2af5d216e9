#!/usr/bin/env python3
"""Drives a headless Chromium through the DevTools protocol, for
test_dashboard.sh. Standard library only: a small WebSocket client, then
CDP commands over it. Never run alone; the test starts Chromium (with
--remote-debugging-port=0 and its own --user-data-dir) and passes that
directory.

    cdp.py PROFILE_DIR URL [--token T] [--screenshot PNG] [--wait SECONDS]

Opens URL in a new tab (its own sessionStorage), waits until the page's
body[data-state] is settled (login, ready or error), types T into the
credential form when given and waits again, then prints one JSON object:
the state, the error banner, every row of numbers ([data-kind] with its
[data-field] cells), the budget lines, whether a chart was drawn, and the
console: messages, exceptions and log entries of level error.
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request


class WebSocket:
    """A client WebSocket (RFC 6455) for text messages, on loopback."""

    def __init__(self, url, timeout):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise SystemExit("cdp.py: refusing a non-loopback DevTools address")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise SystemExit("cdp.py: DevTools closed the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise SystemExit("cdp.py: no WebSocket upgrade: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if op == 0x8:
                raise EOFError("DevTools sent close")
            if op == 0x9:  # ping
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(data)) + b"\0\0\0\0" + data)
                continue
            if op in (0x0, 0x1, 0x2):
                message += data
                if b0 & 0x80:
                    return message.decode()


class Tab:
    def __init__(self, ws, deadline):
        self.ws = ws
        self.deadline = deadline
        self.next_id = 0
        self.events = []

    def call(self, method, params=None):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        while True:
            if time.monotonic() > self.deadline:
                raise SystemExit("cdp.py: timed out in %s" % method)
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise SystemExit("cdp.py: %s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise SystemExit("cdp.py: evaluation failed: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def settle(self):
        """Until the page says it is done (bounded by the deadline)."""
        while time.monotonic() < self.deadline:
            st = self.eval("document.body ? document.body.dataset.state : ''")
            if st in ("login", "ready", "error"):
                return st
            time.sleep(0.1)
        raise SystemExit("cdp.py: the page never settled")


EXTRACT = r"""(() => {
  const rows = [...document.querySelectorAll('[data-kind]')].map((r) => {
    const fields = {};
    r.querySelectorAll('[data-field]').forEach((c) => { fields[c.dataset.field] = c.dataset.value; });
    return {kind: r.dataset.kind, name: r.dataset.name ?? r.dataset.id, fields};
  });
  const budgets = [...document.querySelectorAll('[data-budget]')].map((b) => ({
    token: b.closest('[data-kind]').dataset.name, kind: b.dataset.budget,
    limit: b.dataset.limit, spent: b.dataset.spent ?? null, text: b.textContent}));
  const err = document.getElementById('dash-error');
  return {state: document.body.dataset.state, error: err.hidden ? '' : err.textContent,
          rows, budgets, chart: !!(window.Chart && window.Chart.getChart('chart-days')),
          chart_version: window.Chart ? window.Chart.version : null,
          text: document.body.innerText};
})()"""


def console_of(events):
    out = []
    for e in events:
        m, p = e["method"], e["params"]
        if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert", "warning"):
            out.append({"kind": "console." + p["type"],
                        "text": " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])})
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append({"kind": "exception", "text": d.get("exception", {}).get("description", d.get("text"))})
        elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            out.append({"kind": "log." + p["entry"]["source"], "level": p["entry"]["level"],
                        "text": p["entry"]["text"], "url": p["entry"].get("url", "")})
    return out


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    profile, url = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2]))
    deadline = time.monotonic() + float(opts.get("--wait", "30"))

    port = None
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(profile, "DevToolsActivePort")) as f:
                port = int(f.readline())
            break
        except (OSError, ValueError):
            time.sleep(0.1)
    if port is None:
        raise SystemExit("cdp.py: Chromium wrote no DevToolsActivePort")
    base = "http://127.0.0.1:%d" % port
    req = urllib.request.Request(base + "/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        target = json.load(r)
    try:
        tab = Tab(WebSocket(target["webSocketDebuggerUrl"], 10), deadline)
        for domain in ("Runtime", "Log", "Page"):
            tab.call(domain + ".enable")
        tab.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        tab.call("Page.navigate", {"url": url})
        tab.settle()
        if "--token" in opts:
            tab.eval("document.getElementById('cred').value = %s;"
                     "document.getElementById('login-form').requestSubmit(); 1" % json.dumps(opts["--token"]))
            time.sleep(0.1)
            tab.settle()
        time.sleep(0.3)  # a late console message still lands in the report
        out = tab.eval(EXTRACT)
        if "--screenshot" in opts:
            h = tab.eval("Math.ceil(document.documentElement.scrollHeight)")
            tab.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": min(int(h), 2400), "deviceScaleFactor": 1, "mobile": False})
            time.sleep(0.3)
            shot = tab.call("Page.captureScreenshot", {"format": "png"})
            with open(opts["--screenshot"], "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        tab.call("Runtime.evaluate", {"expression": "1"})  # flush pending events
        out["console"] = console_of(tab.events)
        print(json.dumps(out))
    finally:
        urllib.request.urlopen(base + "/json/close/" + target["id"], timeout=10).read()


if __name__ == "__main__":
    main()
