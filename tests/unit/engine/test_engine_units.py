"""Engine pieces that need no server: settings, bind codec, retry rules, bind styles."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import uuid
from collections.abc import Mapping

import pytest

from dms_pkg.db.binds import escape_pyformat, pyformat_to_numeric
from dms_pkg.engine import config as cfg
from dms_pkg.engine.codec import decode_params, encode_params
from dms_pkg.engine.planning import choose_workers
from dms_pkg.engine.retry import OUTAGE_WAIT, backoff, is_outage, is_transient
from dms_pkg.engine.worker import RetryPolicy
from dms_pkg.errors import DmsError


def resolve(**layers: Mapping[str, object]) -> cfg.EngineConfig:
    return cfg.resolve(list(layers.items()))


def test_later_layers_win_and_origins_are_recorded() -> None:
    config = resolve(
        DMS_PARAMS=cfg.env_layer({"MAPPER_MAX_WORKERS": "2"}),
        environment=cfg.env_layer({"MAPPER_MAX_WORKERS": "3", "MAPPER_CHUNK_SIZE": "500"}),
        p_params={"max_workers": 5},
    )
    assert config["max_workers"] == 5 and config.origins["max_workers"] == "p_params"
    assert config["chunk_size"] == 500 and config.origins["chunk_size"] == "environment"
    assert config["enable_retry"] is True and config.origins["enable_retry"] == "default"
    assert config.as_json()["chunk_size"] == {"value": 500, "from": "environment"}


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"max_workers": 0}, "max_workers must be from 1 to 64, got 0 (from p_params)"),
        ({"max_workers": "four"},
         'max_workers must be a number (from 1 to 64), got "four", a string (from p_params)'),
        ({"max_workers": 2.5}, "max_workers must be from 1 to 64, got 2.5 (from p_params)"),
        ({"enable_retry": "maybe"},
         'enable_retry must be a boolean, got "maybe", a string (from p_params)'),
        ({"path": "fast"},
         "path must be one of auto, same_db, copy, rows, got 'fast' (from p_params)"),
        ({"max_retries": -1}, "max_retries must be from 0 to 100, got -1 (from p_params)"),
    ],
)
def test_bad_values_name_the_setting_and_range(layer: dict[str, object], message: str) -> None:
    with pytest.raises(DmsError) as err:
        resolve(p_params=layer)
    assert err.value.message == message
    assert err.value.sqlstate == "22023"


@pytest.mark.parametrize(("origin", "layer", "value"), [
    ("p_params", {"max_workers": 4.0}, 4),  # JSON has one number type
    ("p_params", {"retry_max_delay": 2}, 2.0),
    ("p_params", {"merge": {"kind": "append"}}, {"kind": "append"}),
    ("DMS_PARAMS", {"max_workers": "4"}, 4),  # text by nature: parsed
    ("environment", {"enable_retry": "off"}, False),
    ("DMS_PARAMS", {"merge": '{"kind": "append"}'}, {"kind": "append"}),
])
def test_typed_layers_take_their_type_and_text_layers_are_parsed(
    origin: str, layer: dict[str, object], value: object
) -> None:
    (name,) = layer
    assert cfg.resolve([(origin, layer)])[name] == value


@pytest.mark.parametrize(("layer", "message", "hint"), [
    ({"chunk_size": "5000"},
     'chunk_size must be a number (from 1 to 1e+09), got "5000", a string (from arguments)',
     'write the number without quotes, for example {"chunk_size": 100000}'),
    ({"snapshot": 1}, "snapshot must be a boolean, got 1, a number (from arguments)",
     "write snapshot as true or false, without quotes"),
    ({"key": ["id"]}, 'key must be a string, got ["id"], an array (from arguments)',
     "write key as a string, in double quotes"),
    ({"retry_max_delay": float("nan")},
     "retry_max_delay must be from 0 to 3600, got nan (from arguments)",
     "retry_max_delay: longest wait between retries, in seconds"),
])
def test_typed_layers_refuse_another_type_naming_value_type_and_range(
    layer: dict[str, object], message: str, hint: str
) -> None:
    with pytest.raises(DmsError) as err:
        cfg.resolve([("arguments", layer)])
    assert (err.value.sqlstate, err.value.message, err.value.hint) == ("22023", message, hint)


def test_environment_values_are_parsed_and_checked() -> None:
    config = resolve(environment=cfg.env_layer({"MAPPER_PARALLEL_ENABLED": "off"}))
    assert config["enable_parallel"] is False
    with pytest.raises(DmsError) as err:
        resolve(environment=cfg.env_layer({"MAPPER_CHUNK_SIZE": "0"}))
    assert err.value.message == "chunk_size must be from 1 to 1e+09, got '0' (from environment)"


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(DmsError) as err:
        cfg.check_keys({"chunksize": 10})
    assert err.value.message == 'unknown parameter "chunksize" in p_params; did you mean ' \
        '"chunk_size"?'


def test_bind_values_keep_their_types() -> None:
    params = {
        "a": 7, "b": decimal.Decimal("1.50"), "c": dt.date(2026, 1, 2),
        "d": dt.datetime(2026, 1, 2, 3, 4, 5, 6), "e": uuid.UUID(int=5), "f": "K%1",
        "g": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "h": None, "i": 2.5,
    }
    encoded = encode_params(params)
    assert [e[0] for e in encoded] == list(params)  # bind order kept
    assert decode_params(encoded) == params
    assert {type(v) for v in decode_params(encoded).values()} == {type(v) for v in params.values()}


def test_pyformat_becomes_numeric_in_bind_order() -> None:
    text = "SELECT * FROM t WHERE k >= %(dms_lo)s AND k < %(dms_hi)s AND v LIKE 'a%%'"
    assert pyformat_to_numeric(text, ["dms_lo", "dms_hi"]) == (
        "SELECT * FROM t WHERE k >= $1 AND k < $2 AND v LIKE 'a%'"
    )
    assert escape_pyformat('"50%"') == '"50%%"'


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [(None, True), ("08006", True), ("40001", True), ("40P01", True), ("55P03", True),
     ("57P01", True), ("53300", True), ("57014", True), ("23505", False), ("23514", False),
     ("22P02", False), ("42703", False), ("42501", False), ("53400", False)],
)
def test_transient_by_sqlstate(sqlstate: str | None, transient: bool) -> None:
    assert is_transient(sqlstate) is transient


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [(None, True), ("08001", True), ("08006", True), ("08004", True), ("57P01", True),
     ("57P03", True), ("HV00N", True), ("08P01", False), ("40001", False), ("55P03", False),
     ("53300", False), ("57014", False), ("42703", False)],
)
def test_outages_are_a_server_that_cannot_be_reached_or_is_restarting(
        sqlstate: str | None, outage: bool) -> None:
    assert is_outage(sqlstate) is outage


def test_an_outage_is_waited_out_past_max_retries_for_a_while() -> None:
    policy = RetryPolicy(max_retries=3, initial_delay=0.5, max_delay=30.0)
    lost = {"database_error": True}
    # max_retries counts tries of a chunk ...
    assert policy.retry_in("40P01", 3, **lost) is not None
    assert policy.retry_in("40P01", 4, **lost) is None
    assert policy.retry_in("08001", 4, **lost) is None  # no outage measured: counted alike
    # ... but a restart is waited for by the clock: OUTAGE_WAIT seconds, then counted again.
    wait = policy.retry_in("08001", 9, **lost, outage_for=OUTAGE_WAIT - 1)
    assert wait is not None and 0 < wait <= 30.0
    assert policy.retry_in("08001", 9, **lost, outage_for=OUTAGE_WAIT) is None
    assert policy.retry_in("08001", 2, **lost, outage_for=OUTAGE_WAIT + 5) is not None
    # The source backend's own verdict and the switches still decide first.
    assert policy.retry_in("08001", 1, **lost, transient=False, outage_for=0.0) is None
    assert RetryPolicy(max_retries=0).retry_in("08001", 1, **lost, outage_for=0.0) is None
    assert RetryPolicy(enabled=False).retry_in("08001", 1, **lost, outage_for=0.0) is None
    assert policy.retry_in(None, 1, database_error=False, outage_for=0.0) is None
    # The worker pauses (waits the outage out) only while it retries past max_retries.
    assert (policy.waits_out(None), policy.waits_out(1.0), policy.waits_out(OUTAGE_WAIT)) == (
        False, True, False)
    assert not RetryPolicy(max_retries=0).waits_out(1.0)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    waits = [backoff(n, 0.5, 4.0, rng) for n in range(1, 7)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))


def test_worker_count_follows_rows_chunks_and_headroom() -> None:
    config = resolve(p_params={"max_workers": 8})
    assert choose_workers(config, 10, 50, None, 0) == (
        1, "sequential: about 10 rows estimated, below min_rows_for_parallel (100,000)")
    assert choose_workers(config, 10**6, 3, None, 0) == (
        3, "3 workers: the source has only 3 chunks")
    assert choose_workers(config, 10**6, 50, 9, 1) == (
        3, "capped at 3 workers: the server accepts 9 more connections (max_connections) "
           "and each worker needs 2")
    assert choose_workers(config, 10**6, 50, 100, 1) == (8, None)
