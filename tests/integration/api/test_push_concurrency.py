"""8 concurrent scouts push 20,000 signals, 10% of them repeats: every (source_region, id) is stored
exactly once (an id is unique per region: the same id from two regions is two signals)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests

from nettrace.store.signals import SignalStore

CLIENTS = 8
TOTAL = 20_000
REPEATS = TOTAL // 10
BATCH = 100
REGIONS = ("lhr", "nrt", "sin", "fra")


def test_concurrent_pushes_store_each_id_once(api: Any, signal_factory: Any) -> None:
    rng = random.Random(7)
    ts = datetime.now(UTC).isoformat()
    uniques = [f"sig-{i:06d}" for i in range(TOTAL - REPEATS)]
    ids = uniques + rng.choices(uniques, k=REPEATS)
    rng.shuffle(ids)
    tokens = {region: api.token(region) for region in REGIONS}
    per_client = [ids[c::CLIENTS] for c in range(CLIENTS)]

    def run(client: int) -> list[tuple[int, int, int, int]]:
        region = REGIONS[client % len(REGIONS)]
        session = requests.Session()
        results = []
        mine = per_client[client]
        for start in range(0, len(mine), BATCH):
            batch = [
                signal_factory(region, id=sid, ts=ts, confidence=rng.random())
                for sid in mine[start : start + BATCH]
            ]
            response = session.post(
                api.base_url + "/api/v1/signals/push",
                json={"signals": batch},
                headers={"Authorization": f"Bearer {tokens[region]}"},
                timeout=60,
            )
            body = response.json()
            results.append(
                (
                    response.status_code,
                    len(batch),
                    body.get("accepted", -1),
                    body.get("duplicates", -1),
                )
            )
        return results

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for chunk in pool.map(run, range(CLIENTS)) for r in chunk]

    # Clients c and c + 4 push for the same region, so repeats race within a region too.
    keys = {(REGIONS[c % len(REGIONS)], sid) for c in range(CLIENTS) for sid in per_client[c]}
    assert len(keys) > len(uniques)  # some ids are sent by two regions: both are stored
    assert all(200 <= status < 300 for status, *_ in results), {s for s, *_ in results}
    assert all(accepted + dups == sent for _, sent, accepted, dups in results)
    assert sum(accepted for *_, accepted, _ in results) == len(keys)
    assert sum(dups for *_, dups in results) == TOTAL - len(keys)
    assert SignalStore(api.db).count() == len(keys)


def test_retried_batch_is_acknowledged_not_stored_again(api: Any, signal_factory: Any) -> None:
    token = api.token("lhr")
    batch = [signal_factory("lhr") for _ in range(5)]
    first = api.push(token, {"signals": [*batch, batch[0]]})
    assert first.status_code == 200
    assert first.json() == {"region": "lhr", "accepted": 5, "duplicates": 1}
    again = api.push(token, {"signals": batch})
    assert again.json() == {"region": "lhr", "accepted": 0, "duplicates": 5}
    assert SignalStore(api.db).count() == 5
