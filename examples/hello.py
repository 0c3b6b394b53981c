"""A tiny demo app for pmdaemon.

With PORT set it serves HTTP (on HOST, default 127.0.0.1) and answers every request with the instance that
handled it; without PORT it prints a heartbeat every second.
"""
import http.server
import os
import sys
import time

INSTANCE = os.environ.get("PM2_INSTANCE_ID", "0")
PORT = os.environ.get("PORT")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from instance {INSTANCE}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"instance {INSTANCE}: {fmt % args}", flush=True)


if PORT:
    print(f"instance {INSTANCE} listening on port {PORT}", flush=True)
    # HOST=0.0.0.0 in a container, so that a published port reaches it.
    HOST = os.environ.get("HOST", "127.0.0.1")
    http.server.ThreadingHTTPServer((HOST, int(PORT)), Handler).serve_forever()
else:
    beat = 0
    while True:
        print(f"instance {INSTANCE} heartbeat {beat}", flush=True)
        beat += 1
        sys.stdout.flush()
        time.sleep(1)
