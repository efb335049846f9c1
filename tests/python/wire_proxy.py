#!/usr/bin/env python3
"""Tiny logging HTTP proxy: records every request/response body between a
Chroma client and a server, one JSON line per exchange.

    python3 tests/python/wire_proxy.py LISTEN_PORT UPSTREAM_PORT LOGFILE

Point the client at LISTEN_PORT. Used to capture CLIENT-NOTES.md examples.
"""
import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _proxy(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        with open(LOG, "a") as f:
            f.write(
                json.dumps(
                    {
                        "method": self.command,
                        "path": self.path,
                        "request": body.decode("utf-8", "replace"),
                        "status": resp.status,
                        "response": data.decode("utf-8", "replace"),
                    }
                )
                + "\n"
            )
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _proxy

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", LISTEN), Handler).serve_forever()
