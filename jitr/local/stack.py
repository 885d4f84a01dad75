"""The embedded local stack: the template's functions and state machine, running on moto in process.

``LocalStack`` deploys what ``template.yaml`` declares into moto's in-process AWS:
each function becomes a moto Lambda whose invocations run the real handler module (with
the template's environment), and the state machine runs the real ASL definition on moto's
Step Functions interpreter. Handlers call AWS through boto3 as they do on AWS; moto answers.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
import zipfile
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import botocore.client
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import DefaultConfig

from jitr.local import moto_fixes
from jitr.local.errors import LocalRuntimeError
from jitr.local.rules import RuleEngine
from jitr.local.template import FunctionSpec, ResolvedTemplate, resolve_template

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
MOTO_CONFIG: DefaultConfig = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "iot": {"use_valid_cert": True},
}
# Set for every local invocation: no X-Ray daemon runs here.
LOCAL_FUNCTION_ENVIRONMENT = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_DEV": "false"}

# One handler runs at a time: handlers read os.environ and print to stdout, both process-wide.
_INVOKE_LOCK = threading.RLock()
_current = threading.local()


class _RoutedOutput(io.TextIOBase):
    """stdout for handler code: each line goes to the stack whose function is running."""

    def write(self, text: str) -> int:
        sink: list[str] | None = getattr(_current, "sink", None)
        if sink is None:
            return sys.__stderr__.write(text) if sys.__stderr__ else len(text)
        sink.append(text)
        return len(text)

    def writable(self) -> bool:
        return True


HANDLER_OUTPUT = _RoutedOutput()


@dataclass(frozen=True)
class ApiCall:
    function: str
    service: str
    operation: str


@dataclass
class Fault:
    """An AWS error to raise instead of making a call, for the next ``times`` calls."""

    error_code: str
    times: int
    message: str = "injected by the local stack"


_original_make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]


def _recording_make_api_call(client: botocore.client.BaseClient, operation_name: str, api_params: Any) -> Any:
    stack: LocalStack | None = getattr(_current, "stack", None)
    if stack is not None:
        service = client.meta.service_model.service_name
        stack.api_calls.append(ApiCall(_current.function, service, operation_name))
        stack.raise_injected_fault(service, operation_name)
    return _original_make_api_call(client, operation_name, api_params)


@dataclass
class LocalLambdaContext:
    """The parts of the Lambda context object the handlers (and Powertools) read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default_factory=lambda: time.monotonic() + 30)

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


@dataclass
class LocalFunction:
    spec: FunctionSpec
    arn: str
    handler: Callable[[Any, Any], Any]
    invocations: int = 0


class LocalStack:
    """The project's stack deployed into an in-process moto; use as a context manager."""

    def __init__(
        self,
        template: Path = DEFAULT_TEMPLATE,
        parameter_overrides: dict[str, str] | None = None,
        *,
        region: str = "us-east-1",
        stack_name: str = "jitr",
    ) -> None:
        self.region = region
        self.account_id = ACCOUNT_ID
        self.stack_name = stack_name
        self.template: ResolvedTemplate = resolve_template(
            template, parameter_overrides, region=region, account_id=ACCOUNT_ID, stack_name=stack_name
        )
        self.functions: dict[str, LocalFunction] = {}
        self.api_calls: list[ApiCall] = []
        self.logs: list[str] = []
        self.state_machine_arn = ""
        self.rules = RuleEngine(self)
        # Set for every function by the AWS the stack runs on (its endpoint, in server mode).
        self.endpoint_environment: dict[str, str] = {}
        self._faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self._exit = ExitStack()
        self._module_prefix = f"jitr_local_{uuid.uuid4().hex[:8]}"

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._exit.enter_context(
            mock.patch.dict(
                os.environ,
                {
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing",
                    "AWS_DEFAULT_REGION": self.region,
                    "AWS_REGION": self.region,
                },
            )
        )
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):  # restored with the rest of the environment
            os.environ.pop(name, None)
        self._start_aws()
        # The interpreter logs every failed state as an error; the execution history already says it.
        interpreter_log = logging.getLogger("moto.stepfunctions.parser")
        self._exit.callback(interpreter_log.setLevel, interpreter_log.level)
        interpreter_log.setLevel(logging.CRITICAL)
        moto_fixes.apply(self._exit)
        self._exit.enter_context(mock.patch.dict(os.environ, self._functions_environment()))
        self._exit.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", self._moto_invoke))
        self._exit.enter_context(
            mock.patch.object(botocore.client.BaseClient, "_make_api_call", _recording_make_api_call)
        )
        self._deploy()

    def _start_aws(self) -> None:
        """Start the AWS the stack deploys into: moto, mocked in this process until ``stop``."""
        self._exit.enter_context(mock_aws(config=MOTO_CONFIG))

    def stop(self) -> None:
        self._exit.close()
        for module_name in [m for m in sys.modules if m.startswith(self._module_prefix)]:
            del sys.modules[module_name]

    # -- deployment ------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """A boto3 client of the stack's AWS."""
        return boto3.client(service, region_name=self.region)  # type: ignore[call-overload]

    def _deploy(self) -> None:
        """Create what the template declares: the functions, the state machine and the IoT rules."""
        iam = self.client("iam")
        role_arn = iam.create_role(
            RoleName=f"{self.stack_name}-local-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        lambda_client = self.client("lambda")
        for spec in self.template.functions.values():
            arn = lambda_client.create_function(
                FunctionName=spec.name,
                Runtime="python3.13",
                Role=role_arn,
                Handler=spec.handler,
                Code={"ZipFile": _placeholder_zip()},
                Environment={"Variables": spec.environment},
                Architectures=["arm64"],
            )["FunctionArn"]
            self.functions[spec.name] = LocalFunction(spec=spec, arn=arn, handler=self._load_handler(spec))
        machine = self.template.state_machine()
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=machine.name,
            definition=json.dumps(machine.definition),
            roleArn=role_arn,
            type=machine.workflow_type,
        )["stateMachineArn"]
        self.rules.deploy()

    def _load_handler(self, spec: FunctionSpec) -> Callable[[Any, Any], Any]:
        """Import the handler module fresh for this stack, so warm-function caches start cold."""
        module_name = f"{self._module_prefix}.{spec.code_dir.name}"
        module_spec = importlib.util.spec_from_file_location(module_name, spec.module_file)
        if module_spec is None or module_spec.loader is None:
            raise LocalRuntimeError(f"cannot import {spec.module_file} for function {spec.logical_id}")
        module: ModuleType = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        with _INVOKE_LOCK, self._function_environment(spec), redirect_stdout(HANDLER_OUTPUT):
            module_spec.loader.exec_module(module)
        handler: Callable[[Any, Any], Any] = getattr(module, spec.function_name_attr)
        return handler

    def _environment_of(self, spec: FunctionSpec) -> dict[str, str]:
        return {
            **spec.environment,
            **LOCAL_FUNCTION_ENVIRONMENT,
            **self.endpoint_environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        }

    def _functions_environment(self) -> dict[str, str]:
        """Every variable any function sets, present in os.environ for the life of the stack.

        Other threads (the interpreter's, the caller's) iterate os.environ whenever they build a
        boto3 client; adding or removing a key meanwhile breaks that iteration. So the keys are
        all created once here, and an invocation only changes values. A function thus also sees
        the variables of the others; each handler reads only its own.
        """
        environment: dict[str, str] = {}
        for spec in self.template.functions.values():
            environment.update(self._environment_of(spec))
        return environment

    @contextmanager
    def _function_environment(self, spec: FunctionSpec) -> Iterator[None]:
        """The function's environment: values only change, the keys exist already."""
        for key, value in self._environment_of(spec).items():
            os.environ[key] = value
        yield

    # -- invocation ------------------------------------------------------------------------
    def _moto_invoke(
        self, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name not in self.functions:
            raise LocalRuntimeError(f"no local handler for Lambda function {function_name}")
        payload = json.loads(body) if body else {}
        result, error = self.invoke(name, payload)
        if error is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error).encode()
        return json.dumps(result).encode()

    def invoke(self, function_name: str, payload: Any) -> tuple[Any, dict[str, str] | None]:
        """Run one function's handler as Lambda would: (result, None) or (None, error document)."""
        function = self.functions[function_name]
        context = LocalLambdaContext(
            function_name=function.spec.name,
            invoked_function_arn=function.arn,
            log_group_name=f"/aws/lambda/{function.spec.name}",
        )
        with (
            _INVOKE_LOCK,
            self._function_environment(function.spec),
            redirect_stdout(HANDLER_OUTPUT),
            warnings.catch_warnings(),
        ):
            # On Lambda this warning is a log line; locally it would land on the user's terminal.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            _current.stack, _current.function, _current.sink = self, function.spec.logical_id, self.logs
            function.invocations += 1
            try:
                return function.handler(payload, context), None
            except Exception as exc:  # a handler error is data for Step Functions, as on Lambda
                return None, {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            finally:
                _current.stack = _current.function = _current.sink = None

    # -- faults ----------------------------------------------------------------------------
    def inject_fault(self, service: str, operation: str, error_code: str, times: int = 1) -> None:
        """Make the next ``times`` handler calls of ``service.operation`` fail with ``error_code``."""
        self._faults[(service, operation)].append(Fault(error_code=error_code, times=times))

    def raise_injected_fault(self, service: str, operation: str) -> None:
        queue = self._faults.get((service, operation))
        if not queue:
            return
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        response: Any = {"Error": {"Code": fault.error_code, "Message": fault.message}}
        response["ResponseMetadata"] = {"HTTPStatusCode": 400}
        raise ClientError(response, operation)

    def api_call_counts(self) -> Counter[str]:
        """How many calls the handlers made, by ``service:Operation``."""
        return Counter(f"{c.service}:{c.operation}" for c in self.api_calls)


def _placeholder_zip() -> bytes:
    """moto stores a code package; the local stack runs the handler from the source tree instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the project's source tree")
    return buffer.getvalue()
