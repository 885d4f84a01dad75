"""The template's IoT rules on the local stack: deployed, and applied to the messages published on a topic.

AWS IoT's rules engine evaluates every rule whose ``FROM`` topic filter matches a message's
topic and runs its actions. Locally the same rules, resolved from ``template.yaml``, are
deployed into moto's AWS IoT (so ``ListTopicRules`` shows them) and applied by ``publish``:

* the SQL is the subset of AWS IoT SQL in ``jitr.local.rule_sql`` (``SELECT`` of ``*``, field
  paths, ``topic()``, ``topic(n)`` and ``timestamp()``, ``FROM`` a topic filter, a ``WHERE`` of
  comparisons joined by ``AND``/``OR``/``NOT``); a message whose ``WHERE`` is not true runs no
  action, and the actions receive the selected value, as JSON;
* a ``StepFunctions`` action starts an execution of the named state machine, named the
  action's ``ExecutionNamePrefix`` plus a UUID, with the selected value as input;
* an ``S3`` action puts the selected value in the bucket under its ``Key`` template, where
  ``${topic()}`` and ``${timestamp()}`` are substituted as AWS IoT does.

Any other SQL, action or substitution is refused when the stack starts, naming the rule:
the local stack never silently drops what a deployed rule would do.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jitr.local.errors import TemplateError
from jitr.local.rule_sql import Message, RuleQuery, RuleSqlError, parse
from jitr.local.template import TopicRuleSpec

if TYPE_CHECKING:
    from jitr.local.stack import LocalStack

_SUBSTITUTION = re.compile(r"\$\{([^}]*)\}")
KEY_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "topic()": lambda topic: topic,
    "timestamp()": lambda topic: str(int(time.time() * 1000)),
}
SUPPORTED_ACTIONS = ("StepFunctions", "S3")


@dataclass(frozen=True)
class Delivery:
    """What one rule action did with a message: the execution it started or the object it wrote."""

    rule: str
    action: str
    target: str


@dataclass(frozen=True)
class LocalRule:
    """A template rule the local stack can apply: its parsed SQL and actions."""

    name: str
    query: RuleQuery
    sql: str
    actions: list[dict[str, Any]]

    @property
    def topic_filter(self) -> str:
        return self.query.topic_filter

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching: ``+`` is one level, a final ``#`` any number of levels."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return index == len(filter_levels) - 1
        if index >= len(topic_levels) or (level not in ("+", topic_levels[index])):
            return False
    return len(filter_levels) == len(topic_levels)


def local_rules(topic_rules: dict[str, TopicRuleSpec]) -> list[LocalRule]:
    """The template's rules as the local stack applies them; anything it cannot apply is an error naming the rule."""
    rules: list[LocalRule] = []
    for spec in topic_rules.values():
        try:
            query = parse(spec.sql)
        except RuleSqlError as error:
            raise TemplateError(
                f"IoT rule {spec.logical_id}: the local rules engine cannot run {spec.sql!r}: {error}"
            ) from error
        for action in spec.actions:
            _check_action(spec.logical_id, action)
        rules.append(LocalRule(name=spec.name, query=query, sql=spec.sql, actions=spec.actions))
    return rules


def _check_action(rule: str, action: dict[str, Any]) -> None:
    kinds = sorted(action)
    if len(kinds) != 1 or kinds[0] not in SUPPORTED_ACTIONS:
        raise TemplateError(
            f"IoT rule {rule}: the local rules engine runs {' and '.join(SUPPORTED_ACTIONS)} actions, "
            f"not {', '.join(kinds) or 'an empty action'}"
        )
    if "S3" in action:
        for name in _SUBSTITUTION.findall(str(action["S3"].get("Key", ""))):
            if name.strip() not in KEY_FUNCTIONS:
                raise TemplateError(
                    f"IoT rule {rule}: the local rules engine substitutes {', '.join(KEY_FUNCTIONS)} "
                    f"in an S3 key, not ${{{name}}}"
                )


def object_key(template: str, topic: str) -> str:
    """An S3 action's key for a message on ``topic``."""
    return _SUBSTITUTION.sub(lambda m: KEY_FUNCTIONS[m.group(1).strip()](topic), template)


def _api_case(value: Any) -> Any:
    """CloudFormation's property names (``StateMachineName``) as the AWS IoT API spells them."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _api_case(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_api_case(item) for item in value]
    return value


class RuleEngine:
    """The template's rules on a ``LocalStack``: ``deploy`` once, then ``publish`` messages."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.rules = local_rules(stack.template.topic_rules)
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        """One client per service for the engine's life: a delivery should not build one."""
        if service not in self._clients:
            self._clients[service] = self.stack.client(service)
        return self._clients[service]

    def deploy(self) -> None:
        """Create the rules in the local AWS IoT, and the buckets their S3 actions write to."""
        iot = self._client("iot")
        s3 = self._client("s3")
        for rule in self.rules:
            iot.create_topic_rule(
                ruleName=rule.name,
                topicRulePayload={
                    "sql": rule.sql,
                    "actions": _api_case(rule.actions),
                    "ruleDisabled": False,
                    "awsIotSqlVersion": "2016-03-23",
                },
            )
            for action in rule.actions:
                if "S3" in action:
                    s3.create_bucket(Bucket=action["S3"]["BucketName"])

    def publish(self, topic: str, message: Any) -> list[Delivery]:
        """Deliver ``message`` on ``topic`` to every matching rule whose ``WHERE`` holds; what each action did."""
        received = Message(payload=message, topic=topic, timestamp=int(time.time() * 1000))
        deliveries: list[Delivery] = []
        for rule in self.rules:
            if not rule.matches(topic) or not rule.query.accepts(received):
                continue
            payload = json.dumps(rule.query.select(received))
            for action in rule.actions:
                if "StepFunctions" in action:
                    deliveries.append(
                        Delivery(rule.name, "StepFunctions", self._start(action["StepFunctions"], payload))
                    )
                else:
                    deliveries.append(Delivery(rule.name, "S3", self._put(action["S3"], topic, payload)))
        return deliveries

    def _start(self, action: dict[str, Any], payload: str) -> str:
        arn = f"arn:aws:states:{self.stack.region}:{self.stack.account_id}:stateMachine:{action['StateMachineName']}"
        started = self._client("stepfunctions").start_execution(
            stateMachineArn=arn, name=f"{action.get('ExecutionNamePrefix', '')}{uuid.uuid4()}", input=payload
        )
        return str(started["executionArn"])

    def _put(self, action: dict[str, Any], topic: str, payload: str) -> str:
        bucket, key = action["BucketName"], object_key(str(action["Key"]), topic)
        self._client("s3").put_object(Bucket=bucket, Key=key, Body=payload.encode())
        return f"s3://{bucket}/{key}"
