"""Chaos verification (issue 7), bounded for CI: three worker processes SIGKILLed at random
moments and restarted, plus a rolling SIGTERM restart, while they process seeded input through
a map, a repartitioned running sum and a tumbling-window count; a verifier then recomputes
every output from the input (read_committed). Exactly-once must show no duplicate, no loss,
no wrong value and no open transaction; at-least-once must show no loss and reports its
duplicates.

Size knobs (environment): ``STREAMFLOW_CHAOS_SEED``, ``STREAMFLOW_CHAOS_RECORDS`` (default
200000), ``STREAMFLOW_CHAOS_RATE`` (records/s, default 2500), ``STREAMFLOW_CHAOS_KILLS``
(default 10), ``STREAMFLOW_CHAOS_PAUSES`` (default 0). Longer soaks:
``python -m tests.chaos.run --help``.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamflow.testing.admin import TopicAdmin
from tests.chaos.harness import PROCESSOR, run
from tests.chaos.inputs import ChaosConfig, InputProducer, Inputs
from tests.chaos.model import model_outputs
from tests.chaos.verifier import Report, Verifier

pytestmark = pytest.mark.integration


def _config(bootstrap: str, tmp_path: Path, guarantee: str) -> ChaosConfig:
    seed = int(os.environ.get("STREAMFLOW_CHAOS_SEED") or random.randrange(1, 1_000_000))
    return ChaosConfig(
        bootstrap=bootstrap,
        seed=seed,
        guarantee=guarantee,
        records=int(os.environ.get("STREAMFLOW_CHAOS_RECORDS", "200000")),
        rate=float(os.environ.get("STREAMFLOW_CHAOS_RATE", "2500")),
        kills=int(os.environ.get("STREAMFLOW_CHAOS_KILLS", "10")),
        sigterm_rounds=1,
        # zombies (SIGSTOP past the session timeout) expose open EOS bugs: off until fixed,
        # see tests/integration/test_eos_fencing.py
        pauses=int(os.environ.get("STREAMFLOW_CHAOS_PAUSES", "0")),
        workdir=tmp_path / "chaos",
        log=lambda line: print(line, flush=True),
    )


def _show(capsys: pytest.CaptureFixture[str], report: Report) -> None:
    with capsys.disabled():
        print("\n" + report.summary_line(), flush=True)


@pytest.mark.timeout(560)
def test_exactly_once_survives_sigkills_and_rolling_restarts(
        kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(kafka_bootstrap, tmp_path, "exactly_once")
    report = run(cfg)
    _show(capsys, report)
    assert report.kills >= min(cfg.kills, 10)
    assert report.sigterm_restarts >= cfg.workers
    assert report.ok, report.details()
    assert not +report.duplicates and not +report.losses and not +report.wrong, report.details()


@pytest.mark.timeout(560)
def test_at_least_once_loses_nothing_under_the_same_chaos(
        kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(kafka_bootstrap, tmp_path, "at_least_once")
    report = run(cfg)
    _show(capsys, report)
    assert report.kills >= min(cfg.kills, 10)
    assert not +report.losses, report.details()
    assert report.ok, report.details()  # under at-least-once only losses are problems


# -- the verifier itself: fed hand-made outputs, it must see every planted fault -------------
def test_verifier_catches_planted_duplicates_losses_and_an_open_transaction(
        kafka_bootstrap: str) -> None:
    app = f"chaos-selftest-{uuid.uuid4().hex[:6]}"
    cfg = ChaosConfig(bootstrap=kafka_bootstrap, seed=7, records=300, users=7, partitions=2,
                      rate=100.0, window_ms=1000, grace_ms=2000, log=lambda _: None)
    topics = {"app": app, "in": f"{app}.in", "map": f"{app}.mapped", "sums": f"{app}.sums",
              "windows": f"{app}.windows",
              "repartition": f"{app}-{PROCESSOR}-by-user-repartition"}
    names = [t for k, t in topics.items() if k != "app"]
    admin = TopicAdmin(kafka_bootstrap)
    admin.create_topics(names, cfg.partitions)
    txn: Any = None
    try:
        now = int(time.time() * 1000)
        inputs = Inputs(cfg, now - now % cfg.window_ms)
        InputProducer(kafka_bootstrap, topics["in"], inputs, 0, inputs.total, 0).run()
        model = model_outputs(inputs, cfg.window_ms)
        # planted faults: a map output twice and one missing; a sum update skipped (its user's
        # later updates are then off the running sums); one window result twice
        model["map"].append(model["map"][5])
        del model["map"][11]
        del model["sums"][20]
        model["windows"].append(model["windows"][0])
        p = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
        for name, records in model.items():
            for key, value, ts in records:
                p.produce(topics[name], orjson.dumps(value), key.encode(), timestamp=ts)
        assert p.flush(30) == 0
        # and a transaction left open on the map topic
        txn = Producer({"bootstrap.servers": kafka_bootstrap,
                        "transactional.id": f"{app}-open", "transaction.timeout.ms": 60000})
        txn.init_transactions(30)
        txn.begin_transaction()
        txn.produce(topics["map"], b"{}", b"uncommitted")
        assert txn.flush(30) == 0

        report = Report("exactly_once", cfg.seed, cfg.records, cfg.users, windows_checked=True)
        Verifier(cfg, inputs, topics, report, admin).run()
        text = report.details()
        assert report.duplicates["map"] == 1, text
        assert report.losses["map"] == 1, text
        assert report.losses["agg-no-update"] == 1, text
        assert report.wrong["agg-sequence"] > 0, text
        assert report.duplicates["windows-emitted-twice"] == 1, text
        assert len(report.open_transactions) == 1, text
        assert report.late == 0 and not report.ok

        alos = Report("at_least_once", cfg.seed, cfg.records, cfg.users, windows_checked=True)
        Verifier(ChaosConfig(**{**cfg.__dict__, "guarantee": "at_least_once"}), inputs, topics,
                 alos, admin).run()
        # under at-least-once the duplicates are notes, the losses still problems
        assert any("map: 1 inputs missing" in p for p in alos.problems), alos.details()
        assert not any("duplicate" in p for p in alos.problems), alos.details()
    finally:
        if txn is not None:
            txn.abort_transaction(30)
        admin.delete_topics(names)

