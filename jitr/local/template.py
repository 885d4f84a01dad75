"""Read the SAM template and resolve what the local runtime needs from it.

The template is the single source of truth: the functions (code folder, handler,
environment), the state machine (definition file and substitutions) and the IoT rules
are taken from it, with parameters, conditions and the intrinsic functions they use
resolved as CloudFormation would. An intrinsic function this module does not evaluate is
an error naming it, never silently skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jitr.local.errors import TemplateError

PSEUDO_PARAMETERS = ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix")
NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long forms."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template (short tags included)."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (safe loader subclass)
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from None
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the template as the local runtime runs it."""

    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]

    @property
    def module_file(self) -> Path:
        return self.code_dir / (self.handler.rsplit(".", 1)[0].replace(".", "/") + ".py")

    @property
    def function_name_attr(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    definition: dict[str, Any]
    workflow_type: str


@dataclass(frozen=True)
class TopicRuleSpec:
    logical_id: str
    name: str
    sql: str
    actions: list[dict[str, Any]]


@dataclass
class ResolvedTemplate:
    """Everything the local runtime deploys, with parameters and intrinsics resolved."""

    path: Path
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    state_machines: dict[str, StateMachineSpec] = field(default_factory=dict)
    topic_rules: dict[str, TopicRuleSpec] = field(default_factory=dict)

    def state_machine(self) -> StateMachineSpec:
        if len(self.state_machines) != 1:
            raise TemplateError(f"expected one state machine in {self.path}, found {len(self.state_machines)}")
        return next(iter(self.state_machines.values()))


class Resolver:
    """Evaluates parameters, conditions and intrinsic functions of one template."""

    def __init__(
        self,
        template: dict[str, Any],
        overrides: Mapping[str, str],
        *,
        region: str,
        account_id: str,
        stack_name: str,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.parameters = self._parameters(overrides)
        self._conditions: dict[str, bool] = {}
        self.physical_names: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str]] = {}

    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = self.template.get("Parameters", {}) or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(
                f"unknown parameter(s) {', '.join(unknown)}; the template declares {', '.join(declared)}"
            )
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = str(overrides[name])
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise TemplateError(f"parameter {name} has no default; pass --parameter-overrides {name}=VALUE")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {', '.join(map(str, allowed))}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {}) or {}
            if name not in conditions:
                raise TemplateError(f"condition {name} is not defined")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resource_enabled(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def resolve(self, value: Any) -> Any:
        """Evaluate the intrinsic functions inside ``value``."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_names:
            return self.physical_names[name]
        raise TemplateError(f"Ref to {name!r}: not a parameter, pseudo parameter or resource the local runtime deploys")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        attrs = self.attributes.get(logical_id, {})
        if attribute not in attrs:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not known to the local runtime")
        return attrs[attribute]

    def _function(self, name: str, arg: Any) -> Any:  # noqa: PLR0911 (one branch per intrinsic)
        if name == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self._get_att(logical_id, attribute)
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::If":
            condition, if_true, if_false = arg
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(str(i) for i in self.resolve(items))
        if name == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, source = arg
            return str(self.resolve(source)).split(delimiter)
        if name == "Fn::Equals":
            left, right = self.resolve(arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(arg[0])
        if name == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if name == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        raise TemplateError(f"the local runtime does not evaluate {name}")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            ref = match.group(1).strip()
            if ref in variables:
                return str(variables[ref])
            if "." in ref and ref.split(".", 1)[0] in self.resources:
                return self._get_att(*ref.split(".", 1))
            return str(self._ref(ref))

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")


# What Ref and Fn::GetAtt return for the resources the local runtime knows, by type.
def _names_for(resource_type: str, name: str, region: str, account: str) -> tuple[str, dict[str, str]] | None:  # noqa: PLR0911
    arn_prefix = f"arn:aws:{{service}}:{region}:{account}"
    match resource_type:
        case "AWS::Serverless::Function" | "AWS::Lambda::Function":
            arn = arn_prefix.format(service="lambda") + f":function:{name}"
            return name, {"Arn": arn}
        case "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine":
            arn = arn_prefix.format(service="states") + f":stateMachine:{name}"
            return arn, {"Arn": arn, "Name": name}
        case "AWS::SQS::Queue":
            url = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
            return url, {"Arn": arn_prefix.format(service="sqs") + f":{name}", "QueueName": name, "QueueUrl": url}
        case "AWS::S3::Bucket":
            return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        case "AWS::IAM::Role":
            return name, {"Arn": f"arn:aws:iam::{account}:role/{name}", "RoleId": name}
        case "AWS::Logs::LogGroup":
            return name, {"Arn": arn_prefix.format(service="logs") + f":log-group:{name}:*"}
        case "AWS::IoT::TopicRule":
            return name, {"Arn": arn_prefix.format(service="iot") + f":rule/{name}"}
        case "AWS::SNS::Topic":
            arn = arn_prefix.format(service="sns") + f":{name}"
            return arn, {"TopicArn": arn, "TopicName": name}
        case "AWS::Serverless::LayerVersion":
            arn = arn_prefix.format(service="lambda") + f":layer:{name}:1"
            return arn, {}
    return None


_NAME_PROPERTIES = {
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IoT::TopicRule": "RuleName",
    "AWS::SNS::Topic": "TopicName",
}


def _default_name(stack_name: str, logical_id: str, resource_type: str) -> str:
    if resource_type == "AWS::IoT::TopicRule":
        return f"{stack_name}_{logical_id}".replace("-", "_")
    if resource_type == "AWS::S3::Bucket":
        return f"{stack_name}-{logical_id}".lower()
    return f"{stack_name}-{logical_id}"


def _merge_globals(template: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    merged = dict((template.get("Globals") or {}).get("Function") or {})
    for key, value in properties.items():
        if key == "Environment":
            variables = dict((merged.get("Environment") or {}).get("Variables") or {})
            variables.update((value or {}).get("Variables") or {})
            merged["Environment"] = {"Variables": variables}
        else:
            merged[key] = value
    return merged


def _substitute_definition(value: Any, substitutions: Mapping[str, Any], source: Path) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_definition(v, substitutions, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_definition(v, substitutions, source) for v in value]
    if isinstance(value, str) and "${" in value:

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in substitutions:
                raise TemplateError(f"{source}: ${{{key}}} has no DefinitionSubstitutions entry in the template")
            return str(substitutions[key])

        return _SUB_VARIABLE.sub(replace, value)
    return value


def check_rules(resolver: Resolver) -> None:
    """Evaluate the template's ``Rules`` as CloudFormation does before it creates anything."""
    for name, rule in (resolver.template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not resolver.resolve(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions") or []:
            if not resolver.resolve(assertion["Assert"]):
                raise TemplateError(f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")


def resolve_template(
    path: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    stack_name: str = "jitr",
) -> ResolvedTemplate:
    """Load ``path`` and resolve its functions, state machine and IoT rules."""
    template = load_template(path)
    base = path.parent
    resolver = Resolver(template, overrides or {}, region=region, account_id=account_id, stack_name=stack_name)
    check_rules(resolver)
    for logical_id, resource in resolver.resources.items():
        resource_type = resource.get("Type", "")
        if not resolver.resource_enabled(logical_id):
            continue
        name_property = _NAME_PROPERTIES.get(resource_type)
        explicit = (resource.get("Properties") or {}).get(name_property) if name_property else None
        name = str(resolver.resolve(explicit)) if explicit else _default_name(stack_name, logical_id, resource_type)
        names = _names_for(resource_type, name, region, account_id)
        if names is not None:
            resolver.physical_names[logical_id], resolver.attributes[logical_id] = names

    resolved = ResolvedTemplate(path=path, parameters=dict(resolver.parameters))
    for logical_id, resource in resolver.resources.items():
        if not resolver.resource_enabled(logical_id):
            continue
        resource_type = resource.get("Type")
        properties = resource.get("Properties") or {}
        if resource_type == "AWS::Serverless::Function":
            props = _merge_globals(template, properties)
            environment = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
            resolved.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                name=resolver.physical_names[logical_id],
                code_dir=(base / str(resolver.resolve(props["CodeUri"]))).resolve(),
                handler=str(resolver.resolve(props["Handler"])),
                environment={k: str(v) for k, v in environment.items()},
            )
        elif resource_type == "AWS::Serverless::StateMachine":
            definition_file = base / str(properties["DefinitionUri"])
            try:
                definition = json.loads(definition_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise TemplateError(f"cannot read the state machine definition {definition_file}: {exc}") from None
            substitutions = resolver.resolve(properties.get("DefinitionSubstitutions") or {})
            resolved.state_machines[logical_id] = StateMachineSpec(
                logical_id=logical_id,
                name=resolver.attributes[logical_id]["Name"],
                definition=_substitute_definition(definition, substitutions, definition_file),
                workflow_type=str(resolver.resolve(properties.get("Type", "STANDARD"))),
            )
        elif resource_type == "AWS::IoT::TopicRule":
            payload = properties["TopicRulePayload"]
            resolved.topic_rules[logical_id] = TopicRuleSpec(
                logical_id=logical_id,
                name=resolver.physical_names[logical_id],
                sql=str(resolver.resolve(payload["Sql"])),
                actions=resolver.resolve(payload.get("Actions") or []),
            )
    return resolved
