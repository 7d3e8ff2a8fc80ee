"""Traces in a state directory that the database does not explain: instances, the built-in
router's folders and HAProxy's or nginx's, each tied to its app+environment."""

from __future__ import annotations

from pathlib import Path

from baepo.api import orphans


def test_router_folders_of_every_kind_belong_to_their_app(tmp_path: Path) -> None:
    for folder in (
        "routers/sample.default",
        "routers/sample.default.preview",
        "routers/haproxy/sample.default.main",
        "routers/nginx/shop.production.main",
    ):
        (tmp_path / folder).mkdir(parents=True)
    traces = orphans.find_traces(tmp_path)
    assert sorted((t.path, t.group) for t in traces) == [
        ("routers/haproxy/sample.default.main/", "sample.default.main"),
        ("routers/nginx/shop.production.main/", "shop.production.main"),
        ("routers/sample.default.preview/", "sample.default.preview"),
        ("routers/sample.default/", "sample.default"),
    ]
    unexplained = orphans.unexplained(traces, [("sample", "default")])
    assert [t.path for t in unexplained] == ["routers/nginx/shop.production.main/"]
