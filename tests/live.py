"""Real Prometheus and Pushgateway daemons for tests: loopback, free ports, temporary folders, stopped
by PID. Started once per test session (Prometheus takes ~5 s to hand new targets to its scraper)."""

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import free_port


def wait_http(url, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


class Daemon:
    def __init__(self, argv, ready_url, folder):
        self.log = open(os.path.join(folder, os.path.basename(argv[0]) + ".log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_http(ready_url)
        except AssertionError:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Prometheus(Daemon):
    def __init__(self, folder, targets, interval="1s", rule_files=(), alertmanager=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jobs = "".join(f"""
  - job_name: {job}
    honor_labels: true
    static_configs:
      - targets: [{', '.join(repr(t) for t in addrs)}]
""" for job, addrs in targets.items())
        cfg = os.path.join(folder, "prometheus.yml")
        with open(cfg, "w") as f:
            rules = "".join(f"\n  - {r}" for r in rule_files)
            f.write(f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
                    f"rule_files:{rules or ' []'}\nscrape_configs:{jobs}")
            if alertmanager:
                f.write(f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n")
        super().__init__(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={folder}/tsdb",
                          f"--web.listen-address=127.0.0.1:{self.port}"], self.url + "/-/ready", folder)

    def query(self, expr):
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)["data"]["result"]

    def wait_for(self, expr, check=lambda r: bool(r), deadline=30.0):
        end = time.time() + deadline
        result = None
        while time.time() < end:
            result = self.query(expr)
            if check(result):
                return result
            time.sleep(0.25)
        raise AssertionError(f"{expr}: {result}")


class Pushgateway(Daemon):
    def __init__(self, folder):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{self.port}",
                          f"--persistence.file={folder}/pgw.data"], self.url + "/-/ready", folder)


class Alertmanager(Daemon):
    """Alertmanager on a config dict, with gossip off (one node, no port 9094)."""

    def __init__(self, folder, config):
        import yaml

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = os.path.join(folder, "alertmanager.yml")
        with open(cfg, "w") as f:
            yaml.safe_dump(config, f)
        super().__init__(["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={folder}/am",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                         self.url + "/-/ready", folder)

    def alerts(self):
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            return json.load(r)
