"""The Prometheus and Grafana kit against the real service: promtool checks and unit-tests the
alert rules; every Grafana panel query and alert expression uses metric names that a live
/metrics scrape exposes, and runs through a real Prometheus that scrapes the service."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import time
import urllib.parse

import pytest
import yaml

from conftest import REPO
from rtsp import free_port
from serving import TRAFFIC, http_get, start_prometheus, start_serve, stop_serve, wait_for

PROMETHEUS_DIR = REPO / "docker" / "prometheus"
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "lanewatch.json"
# PromQL words that look like metric names but are not.
_PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "and", "on", "offset",
                 "round", "label_values", "le", "stream", "lane", "class", "direction", "stage"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed (Debian package prometheus): run install.sh"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules_and_the_scrape_config(tmp_path):
    check = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    # The scrape config names the rule file where the container mounts it; check a copy that
    # points at the repository's file instead.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    check = promtool("check", "config", str(copy))
    assert check.returncode == 0, check.stdout + check.stderr


def test_promtool_unit_tests_cover_every_alert():
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    firing = {a["alertname"] for t in tests for a in t["alert_rule_test"] if a["exp_alerts"]}
    quiet = {a["alertname"] for t in tests for a in t["alert_rule_test"] if not a["exp_alerts"]}
    assert firing == alerts and quiet == alerts  # each alert: when it fires, and when not


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    return queries


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(lanewatch_[a-z_]+)\b", expr))
    assert names, f"no lanewatch metric in {expr!r}"
    return names


def exposed_names(exposition: str) -> set[str]:
    """Sample names a scrape exposes (families from # TYPE lines with their suffixes, and
    every sample line)."""
    names = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M))
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        names |= {f"{family}_total", family} if kind == "counter" else (
            {f"{family}_bucket", f"{family}_sum", f"{family}_count"} if kind == "histogram"
            else {family})
    return names


def promql(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in."""
    return expr.replace("$stream", ".*").replace("$__range", "10m")


@pytest.fixture(scope="module")
def service_and_prometheus(tmp_path_factory, detector_model, highway_video):
    folder = tmp_path_factory.mktemp("monitoring")
    port = free_port()
    config = folder / "serve.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}, classes: [car, truck, bus, motorcycle]}}
        server: {{port: {port}}}
        store: {{path: {folder / 'counts.db'}}}
        streams:
          - id: highway
            source: {highway_video}
            source_options: {{loop: true}}
            lanes:
              - name: lane3
                polygon: [[658, 120], [738, 120], [970, 700], [641, 700]]
                line: [[654, 250], [790, 250]]
                direction: in
                max_dwell_s: 600
                congestion: {{min_occupancy: 1, min_duration_s: 0.3}}
              - {{name: lane4, line: [[790, 250], [910, 250]], direction: in}}
    """) + TRAFFIC)
    base, service = start_serve(config, port, folder / "serve.log")
    prometheus, process = start_prometheus(folder, f"127.0.0.1:{port}",
                                           [PROMETHEUS_DIR / "alerts.yml"])
    try:
        yield base, prometheus
    finally:
        process.terminate()
        process.wait(30)
        stop_serve(service)


def test_every_query_uses_metrics_the_service_exposes(service_and_prometheus):
    base, _ = service_and_prometheus
    assert wait_for(lambda: "lanewatch_lane_crossings_total{" in http_get(base + "/metrics"), 60)
    exposed = exposed_names(http_get(base + "/metrics"))
    for expr in dashboard_queries() + alert_expressions():
        missing = metric_names(expr) - exposed
        assert not missing, f"{expr!r} uses {missing}, which /metrics does not expose"


@pytest.mark.timeout(240)
def test_every_query_runs_in_a_real_prometheus(service_and_prometheus):
    _, prometheus = service_and_prometheus

    def query(expr):
        url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return json.loads(http_get(url))

    def results(expr):
        answer = query(expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    # Rates need a few scrapes of a moving counter first.
    assert wait_for(lambda: results("rate(lanewatch_frames_total[1m]) > 0"), 90, step=1)
    assert wait_for(lambda: results("increase(lanewatch_lane_crossings_total[1m]) > 0"), 90,
                    step=1)
    time.sleep(2)
    empty = []
    for expr in dashboard_queries():
        if expr.startswith("label_values("):  # a Grafana function: ask the label API instead
            answer = json.loads(http_get(f"{prometheus}/api/v1/label/stream/values"))
            assert answer["data"] == ["highway"]
            continue
        if not results(promql(expr)):
            empty.append(expr)
    assert empty == []  # every panel has data on a running stream
    for expr in alert_expressions():
        results(expr)  # valid PromQL against the real series (alerts need not fire)
    rules = json.loads(http_get(f"{prometheus}/api/v1/rules"))["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} == {
        "LanewatchLaneCongested", "LanewatchStreamDown", "LanewatchFrameRateLow",
        "LanewatchCountingUnreliable", "LanewatchLatencyHigh", "LanewatchLaneSilent",
        "LanewatchWrongWayDriver"}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"])
