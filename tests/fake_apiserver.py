"""A fake Kubernetes API server: HTTPS on a loopback port, answering `GET /api/v1/pods` with a
PodList of what the test sets, to a request with the expected bearer token and node field selector;
refusing (403), hanging or talking garbage when told to."""

import json
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pod(namespace, name, containers):
    """A v1.Pod as the API server lists it, about 9 KB as a real one is (its managed fields stand for
    the spec, env and volumes left out); `containers`: {container name: container id or None}."""
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}",
                         "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"x": "y" * 8000}}}]},
            "spec": {"nodeName": "gpu-node-1", "containers": [{"name": c, "image": "vllm/vllm-openai:v0.6"}
                                                               for c in containers]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": c, "ready": True, **({"containerID": f"containerd://{cid}"} if cid else {})}
                for c, cid in containers.items()]}}


class ApiServer:
    def __init__(self, cert, key, token, node="gpu-node-1", pods=()):
        self.token, self.node, self.pods = token, node, list(pods)
        self.status, self.delay, self.garbage = 200, 0.0, False
        self.calls: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                url = urllib.parse.urlsplit(self.path)
                fake.calls.append({"path": url.path, "query": urllib.parse.parse_qs(url.query),
                                   "authorization": self.headers.get("Authorization")})
                time.sleep(fake.delay)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._answer(401, {"kind": "Status", "reason": "Unauthorized"})
                if fake.status != 200:
                    return self._answer(fake.status, {"kind": "Status", "reason": "Forbidden"})
                selector = urllib.parse.parse_qs(url.query).get("fieldSelector", [""])[0]
                items = fake.pods if selector == f"spec.nodeName={fake.node}" else []
                return self._answer(200, {"kind": "PodList", "apiVersion": "v1", "items": items})

            def _answer(self, code, doc):
                body = b"\x00{not json" if fake.garbage else json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
