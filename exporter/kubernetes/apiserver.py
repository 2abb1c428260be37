"""The names of this node's containers, from the API server, for per-pod GPU memory: a process's
cgroup gives its container id, which the kubelet's pod-resources API does not know. This node's
pods are listed (`fieldSelector=spec.nodeName=$NODE_NAME`, from the API server's cache) on a thread of
its own: once at start, then only when a scrape meets a container it cannot name, and at most once a
refresh interval, so a node with steady pods costs the API server nothing and a scrape never waits.
A container that a list did not name (a process left behind by a deleted pod) is asked for again
after a wait that doubles, up to MAX_BACKOFF intervals, rather than costing a list every interval;
a container not asked for before is listed within an interval.
A container id always names the same container, so names already known stay right while a list fails."""

import json
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.errors import UsageError
from exporter.kubernetes.attribution import Owner

DEADLINE_SECONDS = 5.0  # at most; never longer than the refresh interval
MAX_BYTES = 64 << 20  # a node's pod list is a few MB even at 250 pods; more is refused, not held
MAX_BACKOFF = 32


@dataclass(frozen=True)
class ApiServer:
    """Where this node's pods are listed: the in-cluster API server and the pod's service account."""

    url: str
    node: str
    token_file: str
    ca_file: str


def in_cluster(env: Mapping[str, str], service_account_dir: str) -> ApiServer:
    """The API server as a pod sees it (what client-go's in-cluster config reads), or UsageError."""
    missing = [k for k in ("NODE_NAME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT") if not env.get(k)]
    if missing:
        raise UsageError(f"--kubernetes.pod-memory needs {', '.join(missing)} in the environment (NODE_NAME from the "
                         "downward API's spec.nodeName; the others are set in every pod)")
    host = env["KUBERNETES_SERVICE_HOST"]
    host = f"[{host}]" if ":" in host else host
    return ApiServer(f"https://{host}:{env['KUBERNETES_SERVICE_PORT']}", env["NODE_NAME"],
                     f"{service_account_dir}/token", f"{service_account_dir}/ca.crt")


def index(pod_list: Any) -> dict[str, Owner]:
    """The containers of a `v1.PodList` (as JSON) by container id; ValueError when it is not one."""
    if not isinstance(pod_list, dict) or not isinstance(pod_list.get("items"), list):
        raise ValueError("the answer is not a PodList")
    containers = {}
    for item in pod_list["items"]:
        meta, status = item.get("metadata") or {}, item.get("status") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not (isinstance(namespace, str) and isinstance(name, str)):
            raise ValueError("a pod without a namespace or name")
        for kind in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for c in status.get(kind) or ():
                cid = c.get("containerID")  # "containerd://<id>", absent until the container has started
                if isinstance(cid, str) and "://" in cid and isinstance(c.get("name"), str):
                    containers[cid.split("://", 1)[1]] = Owner(namespace, name, c["name"])
    return containers


class NodePods:
    def __init__(self, server: ApiServer, interval: float) -> None:
        self.server, self.interval = server, interval
        self.lock = threading.Lock()
        self.containers: dict[str, Owner] = {}
        self.answered = False  # whether the last list was answered
        self.error: str | None = None  # why the last list failed
        self._asked: set[str] = set()  # container ids asked for and not known, since the last list
        self._unnamed: set[str] = set()  # those the last list did not name either
        self._backoff = 1
        self._retry_unnamed = 0.0  # monotonic time after which those are asked for again
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apiserver", daemon=True)

    def start(self) -> None:
        self._wanted.set()
        self._thread.start()

    def owner(self, container_id: str) -> Owner | None:
        """The container with this id, or None, and then this node's pods are listed again soon."""
        with self.lock:
            found = self.containers.get(container_id)
            if found is None and (container_id not in self._unnamed or time.monotonic() >= self._retry_unnamed):
                self._asked.add(container_id)
                self._wanted.set()
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            self.refresh()
            self._stop.wait(self.interval)

    def refresh(self) -> None:
        with self.lock:
            asked, self._asked = self._asked, set()
        try:
            got = index(self._list())
        except Exception as e:  # noqa: BLE001 - refused, unreachable, too slow, too large, not a PodList
            with self.lock:
                self.answered, self.error = False, f"{type(e).__name__}: {e}"
            return
        unnamed = asked - got.keys()
        with self.lock:
            self._backoff = min(2 * self._backoff, MAX_BACKOFF) if unnamed and unnamed <= self._unnamed else 1
            self._unnamed, self._retry_unnamed = unnamed, time.monotonic() + self.interval * self._backoff
            self.containers, self.answered, self.error = got, True, None

    def _list(self) -> Any:
        s = self.server
        query = urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={s.node}", "resourceVersion": "0"})
        with open(s.token_file) as f:  # read each time: a projected token is renewed on disk every hour
            token = f.read().strip()
        request = urllib.request.Request(f"{s.url}/api/v1/pods?{query}", headers={
            "Authorization": f"Bearer {token}", "Accept": "application/json"})
        context = ssl.create_default_context(cafile=s.ca_file)
        with urllib.request.urlopen(request, timeout=min(DEADLINE_SECONDS, self.interval), context=context) as r:
            body = r.read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES:
            raise ValueError(f"the pod list is over {MAX_BYTES >> 20} MiB")
        return json.loads(body)

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
