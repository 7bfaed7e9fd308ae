"""Hot reload: every way a policy file can change, refused edits, and no failed request while it happens.

Real files in a temporary folder, a real server on loopback in front of a real model server.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guardrails.app import build_folder_app
from guardrails.demo.model import ModelServer
from guardrails.policy.load import load_policy_file
from guardrails.registry import PolicyRegistry
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CREDIT = (POLICIES / "credit-risk.yaml").read_text()
LOW_RISK = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}
ADMIN = "admin-secret"


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


STRICTER = edited(CREDIT, "  - when: score >= 0.85\n", "  - when: score >= 0.80\n")
REFERENCE = "credit-risk.reference.json"  # the credit policy's `monitor:` reads it beside the policy file


def copy_reference(folder: Path) -> None:
    (folder / REFERENCE).write_bytes((POLICIES / REFERENCE).read_bytes())


FIRST_WHEN_LINE = CREDIT.splitlines().index("  - when: score >= 0.85") + 1


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir()
    (path / "credit-risk.yaml").write_text(CREDIT)
    copy_reference(path)
    return path


@pytest.fixture
def registry(folder: Path) -> PolicyRegistry:
    registry = PolicyRegistry(folder=folder)
    report = registry.reload()
    assert report.added == ["credit-risk"]
    return registry


def live_version(registry: PolicyRegistry, name: str = "credit-risk") -> str:
    return registry.served.live[name].policy.version_id


def test_an_edit_goes_live_and_is_listed_among_the_versions(folder: Path, registry: PolicyRegistry) -> None:
    before = live_version(registry)
    (folder / "credit-risk.yaml").write_text(STRICTER)
    report = registry.reload()
    assert report.updated == ["credit-risk"] and report.failed == []
    assert live_version(registry) != before
    assert [v.version_id for v in registry.versions["credit-risk"]] == [before, live_version(registry)]


def test_an_edit_of_comments_and_whitespace_only_changes_nothing(folder: Path, registry: PolicyRegistry) -> None:
    before = live_version(registry)
    (folder / "credit-risk.yaml").write_text(
        "# a new comment\n" + CREDIT.replace("policy: credit-risk ", "policy:   credit-risk ")
    )
    report = registry.reload()
    assert report.updated == [] and report.unchanged == ["credit-risk"]
    assert live_version(registry) == before


def test_a_new_file_adds_a_policy(folder: Path, registry: PolicyRegistry) -> None:
    (folder / "other.yaml").write_text(edited(CREDIT, "policy: credit-risk", "policy: credit-risk-eu"))
    assert registry.reload().added == ["credit-risk-eu"]
    assert set(registry.served.live) == {"credit-risk", "credit-risk-eu"}


def test_a_deleted_file_stops_its_policy_only_when_it_stays_deleted(folder: Path, registry: PolicyRegistry) -> None:
    (folder / "credit-risk.yaml").unlink()
    first = registry.reload()
    assert first.removed == [] and "credit-risk" in registry.served.live  # an editor's delete-then-write
    second = registry.reload()
    assert second.removed == ["credit-risk"] and registry.served.live == {}


def test_a_deleted_file_that_comes_back_keeps_serving(folder: Path, registry: PolicyRegistry) -> None:
    (folder / "credit-risk.yaml").unlink()
    registry.reload()
    (folder / "credit-risk.yaml").write_text(CREDIT)
    assert registry.reload().removed == []
    assert registry.reload().removed == []
    assert "credit-risk" in registry.served.live


def test_an_editor_that_writes_a_temporary_file_and_renames_it(folder: Path, registry: PolicyRegistry) -> None:
    temporary = folder / ".credit-risk.yaml.swp"
    temporary.write_text(STRICTER)
    os.replace(temporary, folder / "credit-risk.yaml")
    assert registry.reload().updated == ["credit-risk"]
    assert registry.served.live["credit-risk"].policy.thresholds[0].when is not None
    assert registry.served.live["credit-risk"].policy.thresholds[0].when.text == "score >= 0.80"


def test_the_configmap_symlink_swap(tmp_path: Path) -> None:
    # Kubernetes mounts a ConfigMap as: name -> ..data/name, ..data -> ..<timestamp>/
    folder = tmp_path / "configmap"
    folder.mkdir()
    (folder / "..2026_11_21_a").mkdir()
    (folder / "..2026_11_21_a" / "credit-risk.yaml").write_text(CREDIT)
    copy_reference(folder)
    (folder / "..data").symlink_to("..2026_11_21_a")
    (folder / "credit-risk.yaml").symlink_to("..data/credit-risk.yaml")
    registry = PolicyRegistry(folder=folder)
    assert registry.reload().added == ["credit-risk"]
    (folder / "..2026_11_21_b").mkdir()
    (folder / "..2026_11_21_b" / "credit-risk.yaml").write_text(STRICTER)
    (folder / "..data_tmp").symlink_to("..2026_11_21_b")
    os.replace(folder / "..data_tmp", folder / "..data")  # the atomic swap
    report = registry.reload()
    assert report.updated == ["credit-risk"] and report.removed == []


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (CREDIT.replace("outcomes: [approve", "outcomes: [approve, ["), "YAML: "),
        (
            CREDIT.replace(
                "    outcome: decline\n    reason: HIGH_RISK", "    ouctome: decline\n    reason: HIGH_RISK"
            ),
            "unknown key `ouctome` (did you mean `outcome`?)",
        ),
        (
            edited(CREDIT, "    expect: {outcome: approve, reasons: [LOW_RISK]}", "    expect: {outcome: decline}"),
            "tests failed: low risk approves: outcome: expected 'decline', got 'approve'",
        ),
    ],
    ids=["bad-yaml", "unknown-key", "failing-test"],
)
def test_a_broken_edit_is_refused_and_the_last_good_version_serves(
    folder: Path, registry: PolicyRegistry, broken: str, error: str
) -> None:
    before = live_version(registry)
    (folder / "credit-risk.yaml").write_text(broken)
    report = registry.reload()
    assert report.updated == [] and len(report.failed) == 1 and error in report.failed[0]
    assert live_version(registry) == before
    state = registry.states["credit-risk"]
    assert state.status == "stale" and state.error is not None and error in state.error
    (folder / "credit-risk.yaml").write_text(CREDIT)  # put back: no longer stale
    registry.reload()
    assert registry.states["credit-risk"].status == "ok"


def test_a_refused_file_reports_file_line_and_column(folder: Path, registry: PolicyRegistry) -> None:
    (folder / "credit-risk.yaml").write_text(edited(CREDIT, "when: score >= 0.85", "when: scroe >= 0.85"))
    report = registry.reload()
    path = folder / "credit-risk.yaml"
    assert report.failed == [f"{path}:{FIRST_WHEN_LINE}:11: unknown name `scroe` (did you mean `score`?)"]


def test_the_same_policy_in_two_files_is_refused(folder: Path, registry: PolicyRegistry) -> None:
    (folder / "copy.yaml").write_text(STRICTER)
    report = registry.reload()
    assert report.failed == [f"{folder / 'copy.yaml'}: policy `credit-risk` is already defined in another file"]
    assert report.updated == []


# ---------------------------------------------------------------- through the server


@pytest.fixture
def model() -> Iterator[ModelServer]:
    server = ModelServer(delay_ms=400)
    with ServerThread(server) as thread:
        server.url = thread.url  # type: ignore[attr-defined]
        yield server


def serve(folder: Path, model: ModelServer, interval: float | None = 0.05) -> ServerThread:
    url = model.url + "/v2/models/credit/infer"  # type: ignore[attr-defined]
    settings = ServerSettings(admin_token=ADMIN, reload_interval_s=interval)
    return ServerThread(build_folder_app(folder, settings, urls={"credit-risk": url})).start()


def wait_for(check: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_the_watcher_reloads_and_the_api_shows_status_versions_and_errors(folder: Path, model: ModelServer) -> None:
    proxy = serve(folder, model)
    with proxy, httpx.Client(base_url=proxy.url, timeout=5) as client:
        first = client.get("/v1/policies/credit-risk").json()
        assert first["status"] == "ok" and first["error"] is None
        (folder / "credit-risk.yaml").write_text(STRICTER)
        wait_for(lambda: client.get("/v1/policies/credit-risk").json()["version_id"] != first["version_id"])
        versions = client.get("/v1/policies/credit-risk/versions").json()
        assert [v["version_id"] for v in versions["versions"]][0] == first["version_id"]
        assert len(versions["versions"]) == 2
        (folder / "credit-risk.yaml").write_text(CREDIT.replace("score >= 0.85", "score >=>= 0.85"))
        wait_for(lambda: client.get("/v1/policies/credit-risk").json()["status"] == "stale")
        info = client.get("/v1/policies/credit-risk").json()
        assert info["error"].startswith(f"{folder / 'credit-risk.yaml'}:{FIRST_WHEN_LINE}:")
        assert "syntax error" in info["error"]
        assert info["version_id"] == versions["versions"][1]["version_id"]  # the last good version serves
        metrics = client.get("/metrics").text
        assert 'guardrails_policy_stale{policy="credit-risk"} 1.0' in metrics
        assert client.get("/v1/policies/nope/versions").status_code == 404


def test_reload_endpoint_needs_the_admin_token_and_says_what_changed(folder: Path, model: ModelServer) -> None:
    proxy = serve(folder, model, interval=None)
    with proxy, httpx.Client(base_url=proxy.url, timeout=5) as client:
        assert client.post("/v1/policies/reload").status_code == 401
        wrong = client.post("/v1/policies/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        (folder / "credit-risk.yaml").write_text(STRICTER)
        (folder / "eu.yaml").write_text(edited(CREDIT, "policy: credit-risk", "policy: credit-risk-eu"))
        answer = client.post("/v1/policies/reload", headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 200
        assert answer.json() == {
            "added": ["credit-risk-eu"],
            "updated": ["credit-risk"],
            "removed": [],
            "unchanged": [],
            "failed": [],
        }


def test_reload_is_forbidden_without_an_admin_token_configured(folder: Path, model: ModelServer) -> None:
    url = model.url + "/v2/models/credit/infer"  # type: ignore[attr-defined]
    app = build_folder_app(folder, ServerSettings(reload_interval_s=None), urls={"credit-risk": url})
    with ServerThread(app) as proxy:
        answer = httpx.post(proxy.url + "/v1/policies/reload", headers={"Authorization": "Bearer x"})
        assert answer.status_code == 403
        assert answer.json() == {
            "error": "http_error",
            "detail": "audit and admin endpoints are disabled: set GUARDRAILS_ADMIN_TOKEN to enable them",
        }


def test_a_request_in_flight_finishes_on_the_version_it_started_with(folder: Path, model: ModelServer) -> None:
    model.mode = "slow"  # 400 ms: the reload happens while the request waits for the model
    old = load_policy_file(folder / "credit-risk.yaml").version_id
    proxy = serve(folder, model, interval=None)
    try:
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(httpx.post(proxy.url + "/v1/decide/credit-risk", json=LOW_RISK, timeout=5))
        )
        request.start()
        time.sleep(0.1)
        (folder / "credit-risk.yaml").write_text(STRICTER)
        reload = httpx.post(proxy.url + "/v1/policies/reload", headers={"Authorization": f"Bearer {ADMIN}"})
        assert reload.json()["updated"] == ["credit-risk"]
        request.join()
        assert answers[0].status_code == 200
        assert answers[0].json()["policy_version"] == old
        after = httpx.post(proxy.url + "/v1/decide/credit-risk", json=LOW_RISK, timeout=5).json()
        assert after["policy_version"] != old
    finally:
        proxy.stop()


def test_no_failed_request_under_load_through_good_and_bad_reloads(folder: Path, model: ModelServer) -> None:
    proxy = serve(folder, model, interval=0.02)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=proxy.url, timeout=5) as client:
            while not stop.is_set() and len(statuses) < 5000:
                answer = client.post("/v1/decide/credit-risk", json=LOW_RISK)
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    versions.add(answer.json()["policy_version"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        path = folder / "credit-risk.yaml"
        for text in (STRICTER, CREDIT.replace("outcomes: [", "outcomes: [["), CREDIT, STRICTER, "", CREDIT):
            path.write_text(text)  # includes a broken file and an empty one mid-write
            time.sleep(0.3)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        proxy.stop()
    assert len(statuses) > 50  # requests overlapped every reload
    assert set(statuses) == {200}
    assert len(versions) == 2  # both good versions served; nothing else ever did
