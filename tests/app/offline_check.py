"""Run ``saswap app`` with every outbound connection attempt recorded; used by tests/app/test_app.py inside a
network namespace that holds only loopback (``unshare -n``).

Usage: ``python offline_check.py PORT SOURCE TARGET`` prints one JSON line: the addresses the app tried to
reach outside loopback, the page's status, the client's swap result and the temporary folders left (the
app's and Gradio's).
"""

from __future__ import annotations


def main() -> None:
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import threading
    import time

    port, source, target = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    outbound: list[str] = []
    local_names = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}

    def loopback(address) -> bool:
        if isinstance(address, tuple) and address:
            host = str(address[0])
            return host in local_names or host.startswith("127.") or host == "::1"
        return True  # unix sockets

    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if not loopback(address):
            outbound.append(f"connect {address}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not loopback(address):
            outbound.append(f"connect {address}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in local_names and not str(name).startswith("127."):
            outbound.append(f"resolve {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    report: dict = {}

    def visit() -> None:
        import httpx

        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                page = httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.25)
        else:
            report["page"] = "no answer"
            os.kill(os.getpid(), signal.SIGTERM)
            return
        report["page"] = page.status_code
        report["theme"] = httpx.get(url + "theme.css", timeout=10, cookies=page.cookies).status_code
        client = (
            "import json, sys; from gradio_client import Client, handle_file; "
            "c = Client(sys.argv[1], verbose=False, download_files=False); "
            "r = c.predict(handle_file(sys.argv[2]), handle_file(sys.argv[3]), '', '0', None, 1.0, "
            "'saswap-geometric', False, api_name='/swap'); print(json.dumps(r[1]))"
        )
        done = subprocess.run([sys.executable, "-c", client, url, source, target], capture_output=True, text=True,
                              timeout=180)  # fmt: skip
        report["swap_tag"] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else done.stderr[-2000:]
        os.kill(os.getpid(), signal.SIGTERM)  # stops the app as a service manager would

    threading.Thread(target=visit, daemon=True).start()
    from saswap.cli import main as saswap_main

    report["exit"] = saswap_main(["app", "--port", str(port)])
    report["outbound"] = outbound
    # the app's folder, and Gradio's (its own "gradio" folder, where an empty vibe_edit_history stayed behind)
    report["left"] = sorted(p for p in os.listdir(tempfile.gettempdir()) if p.startswith(("saswap-", "gradio")))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
