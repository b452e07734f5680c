"""The controller's indexes: Services by (namespace, name) and repositories by key lead to their releases, kept
right through spec changes and removals (no scan of all releases per event)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bluegreen.runtime.controller import Controller, Key

REPO_A = "https://git.example.com/team/a.git"
REPO_B = "https://git.example.com/team/b.git"


def release(name: str, *, service: str = "svc", preview: str | None = None, url: str = REPO_A,
            ref: dict[str, str] | None = None, generation: int = 1, namespace: str = "ns",
            path: str | None = "d.yaml") -> dict[str, Any]:
    source: dict[str, Any] = {"url": url}
    if path is not None:
        source["path"] = path
    if ref is not None:
        source["ref"] = ref
    spec: dict[str, Any] = {"source": source, "service": service}
    if preview is not None:
        spec["previewService"] = preview
    return {"metadata": {"namespace": namespace, "name": name, "uid": name, "generation": generation},
            "spec": spec}


def controller() -> Controller:
    return Controller(lambda body, spec: None)


def test_services_and_repositories_lead_to_their_releases() -> None:
    c = controller()
    c.upsert(release("a", service="shop", preview="shop-preview", url=REPO_A))
    c.upsert(release("b", service="shop", url="ssh://git@git.example.com/team/a"))  # same repository, over ssh
    c.upsert(release("c", service="cart", url=REPO_B))
    c.upsert(release("d", service="shop", url=REPO_B, namespace="other"))
    assert c.releases_of_service("ns", "shop") == {("ns", "a"), ("ns", "b")}
    assert c.releases_of_service("ns", "shop-preview") == {("ns", "a")}
    assert c.releases_of_service("ns", "cart") == {("ns", "c")}
    assert c.releases_of_service("other", "shop") == {("other", "d")}
    assert c.releases_of_service("ns", "nothing") == set()
    assert c.releases_of_repository(REPO_A) == {("ns", "a"), ("ns", "b")}
    assert c.releases_of_repository("ssh://git@git.example.com/team/b") == {("ns", "c"), ("other", "d")}


@pytest.mark.parametrize(("change", "services", "repositories"), [
    # a new generation moves the release in the indexes
    (release("a", service="cart", url=REPO_B, generation=2),
     {("ns", "shop"): set(), ("ns", "shop-preview"): set(), ("ns", "cart"): {("ns", "a")}},
     {REPO_A: set(), REPO_B: {("ns", "a")}}),
    # the preview Service dropped
    (release("a", service="shop", generation=2),
     {("ns", "shop"): {("ns", "a")}, ("ns", "shop-preview"): set()},
     {REPO_A: {("ns", "a")}}),
    # the same generation (our status write, a label change): the spec is not parsed again
    (release("a", service="cart", url=REPO_B, generation=1),
     {("ns", "shop"): {("ns", "a")}, ("ns", "shop-preview"): {("ns", "a")}, ("ns", "cart"): set()},
     {REPO_A: {("ns", "a")}, REPO_B: set()}),
    # an invalid spec (no path) is in no index: no Service event or push can concern it
    (release("a", service="shop", path=None, generation=2),
     {("ns", "shop"): set(), ("ns", "shop-preview"): set()},
     {REPO_A: set()}),
])
def test_a_spec_change_moves_the_release_in_the_indexes(change: dict[str, Any], services: dict[Key, set[Key]],
                                                        repositories: dict[str, set[Key]]) -> None:
    c = controller()
    c.upsert(release("a", service="shop", preview="shop-preview", url=REPO_A))
    c.upsert(change)
    assert {key: c.releases_of_service(*key) for key in services} == services
    assert {url: c.releases_of_repository(url) for url in repositories} == repositories


def test_removal_takes_the_release_out_of_every_index_and_leaves_no_empty_entries() -> None:
    c = controller()
    c.upsert(release("a", service="shop", preview="shop-preview", url=REPO_A))
    c.upsert(release("b", service="shop", url=REPO_A))
    c.remove("ns", "a")
    assert c.releases_of_service("ns", "shop") == {("ns", "b")}
    assert c.releases_of_service("ns", "shop-preview") == set()
    assert c.releases_of_repository(REPO_A) == {("ns", "b")}
    c.remove("ns", "b")
    c.remove("ns", "never-existed")
    assert c._by_service == {} and c._by_repository == {} and c._specs == {}


def test_service_events_and_pushes_queue_exactly_the_indexed_releases() -> None:
    checked: list[Key] = []

    async def scenario() -> tuple[list[Key], list[Key], int]:
        c = Controller(lambda body, spec: None, request_check=lambda ns, name, at: checked.append((ns, name)))
        c.upsert(release("a", service="shop", url=REPO_A))
        c.upsert(release("b", service="shop", url=REPO_A, ref={"branch": "dev"}))
        c.upsert(release("c", service="cart", url=REPO_B))
        c.upsert(release("d", service="shop", url=REPO_A, namespace="other"))
        c.upsert(release("e", service="shop", url=REPO_A, generation=1))
        c.upsert(release("e", service="cart", url=REPO_B, generation=2))  # moved away from shop and REPO_A
        queued: list[Key] = []
        c.enqueue = queued.append  # type: ignore[method-assign]
        c.service_changed("ns", "shop")
        by_service = sorted(queued)
        queued.clear()
        count = c.trigger([REPO_A], "refs/heads/main")
        return by_service, sorted(queued), count

    by_service, by_push, count = asyncio.run(scenario())
    assert by_service == [("ns", "a"), ("ns", "b")]
    assert by_push == [("ns", "a"), ("other", "d")]  # b follows dev; c and e another repository
    assert count == 2 and sorted(checked) == by_push
