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
from moto.core.models import botocore_stubber
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

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
# Executions the interpreter runs at once; the others wait their turn (see ExecutionPool).
MAX_RUNNING_EXECUTIONS = 2
EXECUTIONS_STOP_SECONDS = 10.0

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
        self._executions = ExecutionPool(MAX_RUNNING_EXECUTIONS)
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
        pool = self._executions

        def start_execution(worker: ExecutionWorker) -> None:
            pool.submit(worker)

        self._exit.enter_context(mock.patch.object(ExecutionWorker, "start", start_execution))
        self._exit.enter_context(mock.patch.object(lambda_eval_utils, "boto_client_for", InterpreterClients()))
        self._executions.start()
        self._deploy()

    def _start_aws(self) -> None:
        """Start the AWS the stack deploys into: moto, mocked in this process until ``stop``."""
        self._exit.enter_context(mock_aws(config=MOTO_CONFIG))

    def stop(self) -> None:
        """Drop the executions still waiting, let the running ones finish (bounded), then stop AWS."""
        self._executions.stop(EXECUTIONS_STOP_SECONDS)
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


class ExecutionPool:
    """Runs the state machine's executions, ``size`` at a time.

    moto's interpreter gives each execution a thread of its own as soon as it starts; with
    hundreds started at once (a fleet connecting, every retry of a pending certificate
    publishing its registration event again) they contend for one interpreter and the
    one-at-a-time handlers, and none finishes. Here an execution is ``RUNNING`` from its start,
    as on AWS, and its states run when a slot frees. On AWS a repeated registration event
    delays no other device; locally the executions for a certificate (the ``certificateId`` of
    their input) that has had one already wait until no first execution does, and run
    ``repeats_at_once`` at a time, so a crowd of retrying devices does not hold back the devices
    not yet registered, nor the MQTT endpoint they connect to. Otherwise, oldest first.
    """

    def __init__(self, size: int, repeats_at_once: int = 1) -> None:
        self.size = size
        self.repeats_at_once = repeats_at_once
        self._repeats_running = 0
        self._ready = threading.Condition()
        self._first: deque[ExecutionWorker] = deque()
        self._repeated: deque[ExecutionWorker] = deque()
        self._seen: set[str] = set()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"jitr-local-execution-{n}") for n in range(self.size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, worker: ExecutionWorker) -> None:
        """What ``ExecutionWorker.start`` does here: queue the execution."""
        key = _certificate_of(worker)
        with self._ready:
            if key is not None and key in self._seen:
                self._repeated.append(worker)
            else:
                self._first.append(worker)
                if key is not None:
                    self._seen.add(key)
            self._ready.notify()

    def stop(self, timeout: float) -> None:
        """Forget the executions not yet begun; wait up to ``timeout`` seconds for the running ones."""
        with self._ready:
            self._stopping = True
            self._first.clear()
            self._repeated.clear()
            self._ready.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        self._threads = []

    def _may_repeat(self) -> bool:
        return bool(self._repeated) and self._repeats_running < self.repeats_at_once

    def _next(self) -> tuple[ExecutionWorker, bool] | None:
        """The next execution to run and whether it repeats a certificate's; None when stopping."""
        with self._ready:
            while not (self._stopping or self._first or self._may_repeat()):
                self._ready.wait()
            if self._stopping:
                return None
            if self._first:
                return self._first.popleft(), False
            self._repeats_running += 1
            return self._repeated.popleft(), True

    def _run(self) -> None:
        while (taken := self._next()) is not None:
            worker, repeat = taken
            try:
                worker._execution_logic()
            except Exception:  # the interpreter records failures in the history; a crash must not end the pool
                logging.getLogger(__name__).exception("an execution ended on an error")
            finally:
                if repeat:
                    with self._ready:
                        self._repeats_running -= 1
                        self._ready.notify()


class InterpreterClients:
    """The Lambda clients of moto's interpreter, made once per region and endpoint rather than per Task.

    Making a boto3 client costs tens of milliseconds, more than the invocation it serves.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, bool, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, botocore_stubber.enabled, moto_server_port())
        with self._lock:
            if key not in self._clients:
                self._clients[key] = boto_client_for(region, service, state_credentials)
            return self._clients[key]


def _certificate_of(worker: ExecutionWorker) -> str | None:
    """The ``certificateId`` of an execution's input (a registration event), if it has one."""
    document = worker._evaluation_details.execution_details.inpt
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    value = document.get("certificateId") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def _placeholder_zip() -> bytes:
    """moto stores a code package; the local stack runs the handler from the source tree instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the project's source tree")
    return buffer.getvalue()
