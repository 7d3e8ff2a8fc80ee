"""The dashboard's report page over real HTTP against a real server and real deploys.

A good revision, then one that crashes on start and is rolled back: the page shows two
deployments, 50 % success and one rollback, and its chart data has the day with one
success and one rollback. Bad input is said on the page; a viewer of another environment
sees none of it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from harness import SampleProject, serving

pytestmark = pytest.mark.slow

PASSWORD = "a long enough password"
DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def kpi(page: str, name: str) -> str:
    found = re.search(rf'<dd id="kpi-{name}">([^<]*)</dd>', page)
    assert found is not None, page
    return found.group(1)


def chart_data(page: str) -> dict[str, Any]:
    found = DATA.search(page)
    assert found is not None, page
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_report_page_numbers_charts_and_who_sees_them(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")
    project.write("2.0.0", replicas=1, extra_env={"SAMPLE_CRASH_ON_START": "true"})
    crashed = project.baepo("deploy", "--wait")
    assert crashed.returncode == 6, crashed.stdout + crashed.stderr
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving again")
    url = str(project.server_info()["url"])
    client = project.dashboard()

    assert 'href="/ui/report"' in client.get("/ui/").text
    response = client.get("/ui/report", params={"since": "30d"})
    assert response.status_code == 200, response.text
    page = response.text
    assert kpi(page, "deployments") == "2"
    assert kpi(page, "success-rate") == "50.0%"
    assert kpi(page, "change-failure-rate") == "50.0%"
    assert kpi(page, "rollbacks") == "1"
    assert kpi(page, "downtime") == "0.0 s"
    assert "1 of 2 finished" in page
    assert re.search(r'<a href="/ui/apps/sample/history\?env=default">sample</a>', page)
    assert 'id="chart-daily"' in page and 'aria-describedby="daily-summary"' in page
    assert '<label for="since">' in page and '<label for="env">' in page

    data = chart_data(page)
    assert len(data["days"]) == len(data["dates"]) >= 30
    today = datetime.now(UTC).date().isoformat()
    assert data["dates"][-1] == today
    by_key = {s["key"]: s["values"] for s in data["outcomes"]}
    assert set(by_key) == {"healthy", "rolled_back", "failed", "aborted", "other"}
    assert all(len(values) == len(data["days"]) for values in by_key.values())
    deployed = data["durations"]
    assert [d["outcome"] for d in deployed] == ["healthy", "rolled_back"]
    assert all(d["seconds"] > 0 for d in deployed)
    days = {datetime.fromtimestamp(d["at"], UTC).date().isoformat() for d in deployed}
    if len(days) == 1:  # both on one UTC day (unless the test ran across midnight)
        index = data["dates"].index(days.pop())
        counts = {key: values[index] for key, values in by_key.items()}
        assert counts == {"healthy": 1, "rolled_back": 1, "failed": 0, "aborted": 0, "other": 0}
    assert sum(by_key["healthy"]) == 1 and sum(by_key["rolled_back"]) == 1
    assert sum(by_key["failed"]) + sum(by_key["aborted"]) + sum(by_key["other"]) == 0

    # The same numbers as the API; an environment or app filter narrows them.
    api = httpx.get(
        f"{url}/api/v1/report", params={"since": "30d"}, headers=project.headers(), timeout=30
    ).json()
    assert (api["deployments"], api["success_rate"], api["rollbacks"]) == (2, 0.5, 1)
    filtered = client.get("/ui/report", params={"env": "default", "app": "sample"}).text
    assert kpi(filtered, "deployments") == "2"
    elsewhere = client.get("/ui/report", params={"env": "nowhere"})
    assert elsewhere.status_code == 200
    assert kpi(elsewhere.text, "deployments") == "0" and 'id="report-empty"' in elsewhere.text

    # Bad input: said on the page, with the form to correct it.
    for params, words in (
        ({"since": "soon"}, "Period: expected a time ago"),
        ({"since": "2999-01-01"}, "does not start in the past"),
        ({"env": "Not An Env"}, "is not an environment name"),
    ):
        bad = client.get("/ui/report", params=params)
        assert bad.status_code == 422, bad.text
        assert 'role="alert"' in bad.text and words in bad.text
        assert '<form method="get" action="/ui/report"' in bad.text
        assert 'id="kpi-deployments"' not in bad.text

    # A viewer of another environment: nothing of default, and default itself refused.
    project.env["BAEPO_PASSWORD"] = PASSWORD
    project.ok("user", "create", "--name", "vera", "--role", "viewer", "--env", "dev")
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = str(project.server_info()["url"])
    anonymous = httpx.get(f"{url}/ui/report", timeout=30)
    assert anonymous.status_code == 303 and "/ui/login" in anonymous.headers["location"]
    vera = httpx.Client(base_url=url, timeout=30)
    logged = vera.post("/ui/login", data={"username": "vera", "password": PASSWORD})
    assert logged.status_code == 303
    seen = vera.get("/ui/report")
    assert seen.status_code == 200, seen.text
    assert kpi(seen.text, "deployments") == "0"
    assert 'id="report-empty"' in seen.text
    assert ">default<" not in seen.text and "sample" not in seen.text
    assert chart_data(seen.text)["durations"] == []
    refused = vera.get("/ui/report", params={"env": "default"})
    assert refused.status_code == 403
    assert "vera may not view default" in refused.text
    assert 'id="kpi-deployments"' not in refused.text
