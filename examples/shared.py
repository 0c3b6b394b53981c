"""A demo app for a shared-port cluster.

It serves HTTP on the socket pmdaemon passes as fd 3 (socket mode: LISTEN_FDS
and LISTEN_PID, as systemd does), or else on $PORT (proxy mode), and answers
every request with its pid and instance. On SIGTERM it stops accepting,
finishes the requests it has, and exits.

    pmdaemon start examples/shared.py -i 4 --port 3000 --shared-port socket
"""
import http.server
import os
import signal
import socket
import threading

INSTANCE = os.environ.get("PM2_INSTANCE_ID", "0")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pid {os.getpid()} instance {INSTANCE}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Requests in flight finish before the process exits.
    daemon_threads = False


if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1":
    server = Server(("", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=3)
    # Several processes accept from this socket: the loser of a race must
    # not block in accept().
    server.socket.setblocking(False)
    print(f"instance {INSTANCE} serving the inherited socket", flush=True)
else:
    port = int(os.environ["PORT"])
    server = Server(("127.0.0.1", port), Handler)
    print(f"instance {INSTANCE} serving port {port}", flush=True)

signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
