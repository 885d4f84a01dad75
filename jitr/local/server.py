"""``jitr local up``: the project's stack behind a local AWS API endpoint, until interrupted.

``ServerStack`` is a ``LocalStack`` whose AWS is moto in server mode, listening on
``http://127.0.0.1:<api-port>``: the same deployment (functions running the real handlers
in process with the template's environment, the state machine's real ASL, the IoT rules),
reachable by ``aws --endpoint-url`` and boto3 from any process. Moto's Step Functions
interpreter and the handlers call AWS through that endpoint.

``LocalEndpoint`` runs the stack and its MQTT endpoint (:mod:`jitr.local.mqtt`, mutual TLS on
``127.0.0.1:<mqtt-port>``, with a server CA written to ``<state-dir>/server-ca.pem``) and lists
what it serves; its ready line names every endpoint,
``jitr local ready api=http://127.0.0.1:4566 mqtt=127.0.0.1:8883 cafile=DIR/server-ca.pem``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from moto.core.base_backend import BackendDict
from moto.core.config import default_user_config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from jitr.local.authorizer import Authorizer
from jitr.local.credentials import LOCAL_CREDENTIALS
from jitr.local.errors import LocalRuntimeError
from jitr.local.moto_fixes import set_data_endpoint
from jitr.local.mqtt import MqttBroker
from jitr.local.stack import DEFAULT_TEMPLATE, MOTO_CONFIG, LocalStack
from jitr.local.tls import SERVER_CA_FILE, ClientTrust, write_server_files

LOCAL_HOST = "127.0.0.1"
DEFAULT_API_PORT = 4566
DEFAULT_MQTT_PORT = 8883
READY_PREFIX = "jitr local ready"
SERVER_START_TIMEOUT_SECONDS = 10.0


class _MotoServer(ThreadedMotoServer):
    """moto's threaded server, reporting a port it cannot bind instead of waiting forever."""

    def __init__(self, ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.error: str | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except (OSError, SystemExit) as exc:  # werkzeug exits when it cannot bind
            self.error = getattr(exc, "strerror", None) or "the address is in use"
            self._server_ready_event.set()

    def _check_port(self) -> None:
        """Fail early, with the system's reason, on a port that cannot be bound."""
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self._ip_address, self._port))
            except OSError as exc:
                raise LocalRuntimeError(f"cannot listen on {self._ip_address}:{self._port}: {exc.strerror}") from None

    def start_listening(self) -> tuple[str, int]:
        self._check_port()
        self._thread = threading.Thread(target=self._server_entry, daemon=True, name="jitr-local-api")
        self._thread.start()
        if not self._server_ready_event.wait(SERVER_START_TIMEOUT_SECONDS):
            raise LocalRuntimeError(f"the AWS API endpoint did not start within {SERVER_START_TIMEOUT_SECONDS:.0f}s")
        if self.error is not None:
            raise LocalRuntimeError(f"cannot listen on {self._ip_address}:{self._port}: {self.error}")
        return self.get_host_and_port()

    def stop_listening(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(SERVER_START_TIMEOUT_SECONDS)


class ServerStack(LocalStack):
    """The project's stack deployed into moto in server mode, on ``http://127.0.0.1:<api_port>``.

    ``api_port=0`` listens on a free port; ``api_port`` holds the port in use once started.
    """

    def __init__(
        self,
        template: Path = DEFAULT_TEMPLATE,
        parameter_overrides: dict[str, str] | None = None,
        *,
        api_port: int = DEFAULT_API_PORT,
        region: str = "us-east-1",
        stack_name: str = "jitr",
    ) -> None:
        super().__init__(template, parameter_overrides, region=region, stack_name=stack_name)
        self.api_port = api_port

    @property
    def api_url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.api_port}"

    def _start_aws(self) -> None:
        """Start moto's server with the local stack's configuration; handlers reach it by AWS_ENDPOINT_URL."""
        self._exit.enter_context(mock.patch.dict(default_user_config, {**default_user_config, **MOTO_CONFIG}))
        BackendDict.reset()
        self._exit.callback(BackendDict.reset)
        # One log line per request would drown the ready line; `jitr local executions` tells the story.
        request_log = logging.getLogger("werkzeug")
        self._exit.callback(request_log.setLevel, request_log.level)
        request_log.setLevel(logging.WARNING)
        server = _MotoServer(LOCAL_HOST, self.api_port)
        self._exit.callback(server.stop_listening)
        _, self.api_port = server.start_listening()
        # Restored by the environment patch of ``start``: the interpreter calls localhost:MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.api_port)
        os.environ["AWS_ENDPOINT_URL"] = self.api_url
        self.endpoint_environment = {"AWS_ENDPOINT_URL": self.api_url}

    def client(self, service: str) -> Any:
        """A boto3 client of the stack's endpoint."""
        return boto3.client(  # type: ignore[call-overload]
            service, region_name=self.region, endpoint_url=self.api_url, **LOCAL_CREDENTIALS
        )


@dataclass(frozen=True)
class Endpoint:
    """One endpoint the local run serves: its name in the ready line, and its address."""

    name: str
    address: str


class LocalEndpoint:
    """Everything ``jitr local up`` runs: the stack behind its API and MQTT endpoints, and the state directory.

    ``mqtt_port=0`` listens on a free port; ``mqtt_port`` holds the port in use once started.
    """

    def __init__(
        self,
        template: Path | None = None,
        parameter_overrides: dict[str, str] | None = None,
        *,
        api_port: int = DEFAULT_API_PORT,
        mqtt_port: int = DEFAULT_MQTT_PORT,
        state_dir: Path | None = None,
    ) -> None:
        self.stack = ServerStack(template or DEFAULT_TEMPLATE, parameter_overrides, api_port=api_port)
        self.mqtt_port = mqtt_port
        self.broker: MqttBroker | None = None
        self._owns_state_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.gettempdir()) / f"jitr-local-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> LocalEndpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Create the state directory, then start the stack behind its endpoint."""
        if self._owns_state_dir:
            self.state_dir.mkdir(mode=0o700)
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.stack.start()
            self._start_mqtt()
        except BaseException:
            self.stop()
            raise

    def _start_mqtt(self) -> None:
        authorizer = Authorizer(self.stack)
        trust = ClientTrust(write_server_files(self.state_dir), authorizer.registered_ca_pems)
        self.broker = MqttBroker(authorizer, trust, host=LOCAL_HOST, port=self.mqtt_port)
        self.mqtt_port = self.broker.start()
        set_data_endpoint(authorizer.backend, LOCAL_HOST)

    @property
    def cafile(self) -> Path:
        """The server CA devices trust: the local stand-in for AmazonRootCA1.pem."""
        return self.state_dir / SERVER_CA_FILE

    def stop(self) -> None:
        """Stop the endpoints, release their ports, and remove the state directory unless it was given."""
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self.stack.stop()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def endpoints(self) -> list[Endpoint]:
        """What this run serves, in the order of the ready line."""
        return [
            Endpoint("api", self.stack.api_url),
            Endpoint("mqtt", f"{LOCAL_HOST}:{self.mqtt_port}"),
            Endpoint("cafile", str(self.cafile)),
        ]

    def ready_line(self) -> str:
        return " ".join([READY_PREFIX, *(f"{e.name}={e.address}" for e in self.endpoints())])
