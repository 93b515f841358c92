"""A real fault-injecting HTTP proxy for the endpoint client's tests: it forwards to a real server (the one of
tests/serving.py) and spoils requests by a plan, so the client meets real 429s, 5xx, stalls and cut streams over
real sockets. Not a mock of the client or of the server: what is not spoiled is the server's own answer.

Run as ``python tests/fault_proxy.py --upstream http://127.0.0.1:PORT --port P [--plan 429,503,cut:2]
[--retry-after S]``. Every ``POST .../completions`` takes the next step of the plan; once it is spent, requests
pass. The steps:

- ``pass``: forwarded untouched;
- ``429`` / ``500`` / ``503`` / ``401`` ... (any status): answered with that status and a JSON body that echoes the
  request's ``Authorization`` header (a careless server's habit the client must scrub), 429 with ``Retry-After``;
- ``cut:K``: forwarded, and the connection broken after K events (the chunked body never terminated);
- ``end:K``: forwarded, and the body ended cleanly after K events (no finish_reason reached the client);
- ``repeat:N``: forwarded with every event sent N times (a server whose stream does not end where it should);
- ``nousage``: forwarded with ``usage`` taken out of every event (a server that reports none in a stream);
- ``refuse:FIELD``: answered 400 ``Unrecognized request argument supplied: FIELD`` (OpenAI's words), as a server
  that does not take that field;
- ``stall``: no answer for ``--stall-s`` seconds, then the connection closed (the client's time-out fires).

``GET /_faults`` tells the requests seen, the steps left and the last request's body fields; ``POST /_faults`` with ``{"plan": [...],
"retry_after_s": S}`` replaces the plan (a module's tests share one proxy). ``proxied(upstream)`` runs it in a
subprocess, stopped by its process id.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's root
from tests.serving import free_port, stop


class Faults:
    """The plan, shared by the handler threads."""

    def __init__(self, plan: list[str], retry_after_s: float, stall_s: float):
        self.lock = threading.Lock()
        self.plan, self.retry_after_s, self.stall_s = list(plan), retry_after_s, stall_s
        self.requests = 0
        self.fields: list[str] = []  # the last request's body fields

    def next_step(self, body: bytes) -> str:
        with self.lock:
            self.requests += 1
            self.fields = sorted(json.loads(body))
            return self.plan.pop(0) if self.plan else "pass"


def handler(upstream: str, faults: Faults, http: httpx2.Client) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: the tests read answers, not logs
            pass

        def do_GET(self) -> None:
            if self.path == "/_faults":
                with faults.lock:
                    self._reply(200, {"requests": faults.requests, "plan": faults.plan, "fields": faults.fields})
            else:
                self._forward_plain(None)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/_faults":
                order = json.loads(body)
                with faults.lock:
                    faults.plan = list(order["plan"])
                    faults.retry_after_s = order.get("retry_after_s", faults.retry_after_s)
                    faults.requests = 0
                self._reply(200, {"plan": faults.plan})
                return
            if not self.path.endswith("/completions"):
                self._forward_plain(body)
                return
            step = faults.next_step(body)
            if step == "stall":
                time.sleep(faults.stall_s)
                self.close_connection = True
            elif step.isdigit():
                echoed = self.headers.get("Authorization", "")
                extra = {"Retry-After": f"{faults.retry_after_s:g}"} if step == "429" else {}
                self._reply(int(step), {"detail": f"fault injected: {step}; you sent {echoed}"}, extra)
            elif step.startswith("refuse:"):
                field = step.partition(":")[2]
                self._reply(400, {"error": {"message": f"Unrecognized request argument supplied: {field}"}})
            else:
                kind, _, events = step.partition(":")
                if kind == "repeat":
                    self._forward_stream(body, kind, None, copies=int(events))
                else:
                    self._forward_stream(body, kind, int(events) if events else None)

        def _reply(self, status: int, document: dict, headers: dict | None = None) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _forward_plain(self, body: bytes | None) -> None:
            answer = http.request(self.command, upstream + self.path, content=body,
                                  headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
            self._reply_raw(answer.status_code, answer.content, answer.headers.get("content-type", ""))

        def _reply_raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _forward_stream(self, body: bytes, kind: str, events_kept: int | None, copies: int = 1) -> None:
            """Relay the upstream's events one chunk each (each ``copies`` times); after ``events_kept`` of them,
            break the connection (``cut``) or end the body cleanly (``end``)."""
            headers = {"Content-Type": "application/json", "Authorization": self.headers.get("Authorization", "")}
            with http.stream("POST", upstream + self.path, content=body, headers=headers) as answer:
                if answer.status_code != 200 or "event-stream" not in answer.headers.get("content-type", ""):
                    self._reply_raw(answer.status_code, answer.read(), answer.headers.get("content-type", ""))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                event: list[str] = []
                for line in answer.iter_lines():
                    if line:
                        event.append(line)
                        continue
                    if not event:
                        continue
                    if events_kept is not None and sent == events_kept:
                        break
                    if kind == "nousage":
                        event = [_without_usage(line) for line in event]
                    for _ in range(copies):
                        self._chunk(("\n".join(event) + "\n\n").encode())
                    sent += 1
                    event = []
            if kind == "cut":  # no terminating chunk: the client sees the connection break mid-body
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Proxy


def _without_usage(line: str) -> str:
    if not line.startswith("data: {"):
        return line
    document = json.loads(line[len("data: "):])
    document.pop("usage", None)
    return "data: " + json.dumps(document)


@dataclass(frozen=True)
class Proxied:
    """A running proxy: its base URL (``http://127.0.0.1:PORT``; add the upstream's path, e.g. ``/v1``), its
    process id."""

    url: str
    pid: int

    def plan(self, steps: list[str], retry_after_s: float = 7.0) -> None:
        httpx2.post(f"{self.url}/_faults", json={"plan": steps, "retry_after_s": retry_after_s}).raise_for_status()

    def seen(self) -> dict:
        return httpx2.get(f"{self.url}/_faults").json()


@contextmanager
def proxied(upstream: str, stall_s: float = 5.0):
    """This module as a subprocess on a free loopback port in front of ``upstream`` (scheme, host and port);
    yields a ``Proxied``; stopped by its process id."""
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--upstream", upstream, "--port", str(port),
                                "--stall-s", str(stall_s)])
    try:
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 30.0
        while True:
            try:
                httpx2.get(f"{url}/_faults", timeout=2.0).raise_for_status()
                break
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"the fault proxy did not start (exit {process.poll()})") from None
                time.sleep(0.05)
        yield Proxied(url=url, pid=process.pid)
    finally:
        stop(process.pid, process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the real server: scheme, host and port")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plan", default="", help="steps, comma-separated: pass, a status, cut:K, end:K, nousage, "
                        "refuse:FIELD, stall")
    parser.add_argument("--retry-after", type=float, default=7.0, help="seconds sent with a 429")
    parser.add_argument("--stall-s", type=float, default=5.0)
    args = parser.parse_args()
    faults = Faults([step for step in args.plan.split(",") if step], args.retry_after, args.stall_s)
    with httpx2.Client(timeout=120.0) as http:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.upstream.rstrip("/"), faults, http))
        server.daemon_threads = True
        server.serve_forever()


if __name__ == "__main__":
    main()
