"""The AWS IoT SQL subset of the local rules engine: parsed once, evaluated per message, the rest refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from jitr.local.errors import TemplateError
from jitr.local.rule_sql import Comparison, Field, Function, Literal, Logical, Message, Not, RuleSqlError, parse
from jitr.local.rules import RuleEngine, local_rules
from jitr.local.template import TopicRuleSpec

TOPIC = "dt/plant/device-1/telemetry"
PAYLOAD = {"temperature": 21.5, "unit": "C", "ok": True, "site": {"name": "plant", "floor": 2}}


def _message(payload: Any = PAYLOAD, topic: str = TOPIC) -> Message:
    return Message(payload=payload, topic=topic, timestamp=1_700_000_000_000)


def _select(sql: str, payload: Any = PAYLOAD) -> Any:
    return parse(sql).select(_message(payload))


def _where(condition: str, payload: Any = PAYLOAD) -> bool:
    return parse(f"SELECT * FROM '{TOPIC}' WHERE {condition}").accepts(_message(payload))


def test_the_template_s_select_star_parses_to_its_topic_filter() -> None:
    query = parse("SELECT * FROM 'dt/+/+/telemetry'")
    assert query.topic_filter == "dt/+/+/telemetry"
    assert query.where is None
    assert query.select(_message()) == PAYLOAD


def test_keywords_are_case_insensitive() -> None:
    assert parse("select * from 'a/b' where x = 1").topic_filter == "a/b"


def test_a_non_object_payload_passes_select_star_as_it_is() -> None:
    assert _select("SELECT * FROM 'dt/#'", [1, 2]) == [1, 2]
    assert _select("SELECT * FROM 'dt/#'", "text") == "text"


@pytest.mark.parametrize(
    ("select_list", "expected"),
    [
        ("temperature", {"temperature": 21.5}),
        ("temperature AS t, unit", {"t": 21.5, "unit": "C"}),
        ("site.name", {"name": "plant"}),
        ("site.floor AS level", {"level": 2}),
        ("missing, unit", {"unit": "C"}),
        ("topic()", {"topic": TOPIC}),
        ("topic() AS t", {"t": TOPIC}),
        ("topic(3) AS device", {"device": "device-1"}),
        ("topic(9) AS nothing", {}),
        ("timestamp()", {"timestamp": 1_700_000_000_000}),
        ("*, topic(2) AS plant", {**PAYLOAD, "plant": "plant"}),
    ],
)
def test_select_builds_the_output_as_aws_iot_does(select_list: str, expected: dict[str, Any]) -> None:
    assert _select(f"SELECT {select_list} FROM 'dt/#'") == expected


def test_select_star_with_items_on_a_non_object_payload_keeps_only_the_items() -> None:
    assert _select("SELECT *, topic() AS t FROM 'dt/#'", [1]) == {"t": TOPIC}


def test_where_parses_with_and_binding_tighter_than_or() -> None:
    query = parse("SELECT * FROM 'x' WHERE a = 1 OR NOT b.c <> 'y' AND topic(1) = 'dt'")
    assert query.where == Logical(
        "OR",
        Comparison("=", Field(("a",)), Literal(1)),
        Logical(
            "AND",
            Not(Comparison("<>", Field(("b", "c")), Literal("y"))),
            Comparison("=", Function("topic", 1), Literal("dt")),
        ),
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("temperature > 20", True),
        ("temperature > 21.5", False),
        ("temperature >= 21.5", True),
        ("temperature < 30", True),
        ("temperature <= 21", False),
        ("temperature = 21.5", True),
        ("temperature <> 21.5", False),
        ("unit = 'C'", True),
        ("unit < 'D'", True),
        ("ok = true", True),
        ("ok = false", False),
        ("site.floor = 2", True),
        ("topic(2) = 'plant'", True),
        ("topic() = 'dt/plant/device-1/telemetry'", True),
        ("timestamp() > 0", True),
        ("temperature > -5", True),
        ("missing = 1", False),
        ("missing <> 1", False),
        ("unit = 1", False),
        ("ok < true", False),
    ],
)
def test_where_comparisons(condition: str, expected: bool) -> None:
    assert _where(condition) is expected


T, F, U = "temperature > 0", "temperature < 0", "missing = 1"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (f"{T} AND {T}", True),
        (f"{T} AND {F}", False),
        (f"{F} AND {T}", False),
        (f"{F} AND {F}", False),
        (f"{T} OR {T}", True),
        (f"{T} OR {F}", True),
        (f"{F} OR {T}", True),
        (f"{F} OR {F}", False),
        (f"NOT {T}", False),
        (f"NOT {F}", True),
        (f"NOT ({F} OR {F})", True),
        (f"NOT NOT {T}", True),
        (f"({T} OR {F}) AND {F}", False),
        (f"{T} OR {F} AND {F}", True),
        (f"{U} OR {T}", True),
        (f"{U} AND {F}", False),
        (f"NOT {U}", False),
        (f"{U} AND {T}", False),
    ],
)
def test_where_truth_table(condition: str, expected: bool) -> None:
    assert _where(condition) is expected


@pytest.mark.parametrize(
    ("sql", "unsupported"),
    [
        ("SELECT upper(unit) FROM 'dt/#'", "unsupported function upper()"),
        ("SELECT * FROM 'dt/#' WHERE unit LIKE 'C%'", "unsupported 'LIKE'"),
        ("SELECT temperature + 1 FROM 'dt/#'", "unsupported '+'"),
        ("SELECT * FROM 'dt/#' WHERE temperature * 2 > 1", "unsupported '*'"),
        ("SELECT CASE unit WHEN 'C' THEN 1 END FROM 'dt/#'", "unsupported 'CASE'"),
        ("SELECT * FROM 'dt/#' WHERE (SELECT x FROM y) = 1", "unsupported nested SELECT"),
        ("SELECT * FROM 'dt/#' WHERE a != 1", "unsupported '!='"),
        ("SELECT 'x' FROM 'dt/#'", "unsupported literal"),
        ("SELECT * FROM dt", "FROM takes a quoted topic filter"),
        ("SELECT * FROM 'dt/#' WHERE a", "expected a comparison"),
        ("SELECT * FROM 'dt/#' LIMIT 1", "unsupported 'LIMIT'"),
        ("SELECT * FROM 'dt/#' WHERE topic(0) = 'x'", "topic() takes a topic level from 1"),
        ("SELECT *", "expected FROM"),
    ],
)
def test_sql_outside_the_subset_is_refused(sql: str, unsupported: str) -> None:
    with pytest.raises(RuleSqlError) as refused:
        parse(sql)
    assert unsupported in str(refused.value)


def test_a_refusal_names_the_rule_and_the_unsupported_part() -> None:
    spec = TopicRuleSpec("ArchiveRule", "jitr_ArchiveRule", "SELECT lower(unit) FROM 'dt/#'", [])
    with pytest.raises(TemplateError) as refused:
        local_rules({"ArchiveRule": spec})
    assert "IoT rule ArchiveRule" in str(refused.value)
    assert "lower()" in str(refused.value)


@dataclass
class _FakeS3:
    """Records the objects put, as the local S3 would store them."""

    objects: dict[str, bytes] = field(default_factory=dict)

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.objects[f"{Bucket}/{Key}"] = Body


def test_a_rule_with_a_field_list_and_where_writes_the_selected_object_to_s3() -> None:
    sql = "SELECT temperature AS t, topic(3) AS device FROM 'dt/+/+/telemetry' WHERE temperature > 20"
    spec = TopicRuleSpec("HotRule", "jitr_HotRule", sql, [{"S3": {"BucketName": "archive", "Key": "${topic()}.json"}}])
    s3 = _FakeS3()
    stack = SimpleNamespace(template=SimpleNamespace(topic_rules={"HotRule": spec}), client=lambda service: s3)
    engine = RuleEngine(stack)  # type: ignore[arg-type]

    deliveries = engine.publish(TOPIC, {"temperature": 25, "unit": "C"})
    assert [(d.rule, d.action, d.target) for d in deliveries] == [("jitr_HotRule", "S3", f"s3://archive/{TOPIC}.json")]
    assert json.loads(s3.objects[f"archive/{TOPIC}.json"]) == {"t": 25, "device": "device-1"}

    assert engine.publish(TOPIC, {"temperature": 15}) == []
    assert engine.publish(TOPIC, [25]) == []
