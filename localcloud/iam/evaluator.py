"""Policy evaluation by @cloud-copilot/iam-simulate, in one node process (JSON lines).

The Python side builds the simulation -- principal, action, resource, context keys, identity
policies, resource policy -- and the node side answers Allowed, ExplicitlyDenied or
ImplicitlyDenied. A simulation determines its decision, so decisions are cached by the whole
simulation (policies included: a changed key policy is another simulation).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

SIMULATOR_DIR = Path(__file__).resolve().parent.parent / "iamsim"
_CACHE_SIZE = 20_000


class Decision(Enum):
    """iam-simulate's overall result."""

    ALLOWED = "Allowed"
    EXPLICITLY_DENIED = "ExplicitlyDenied"
    IMPLICITLY_DENIED = "ImplicitlyDenied"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOWED


class EvaluatorError(RuntimeError):
    """The simulator refused the simulation (an invalid policy, action or resource) or is missing."""


@dataclass(frozen=True)
class Principal:
    """Who signs a call: an IAM role's session (a Lambda function's execution role).

    ``tags`` are the principal's tags (``aws:PrincipalTag/<key>``): a role's tags, or the session
    tags of an AssumeRole with tags, for attribute-based access control.
    """

    account: str
    role_name: str
    session_name: str
    role_path: str = "/"
    tags: Mapping[str, str] = field(default_factory=dict)
    partition: str = "aws"

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{self.role_path}{self.role_name}"

    @property
    def session_arn(self) -> str:
        return f"arn:{self.partition}:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"

    def context(self) -> dict[str, str | list[str]]:
        """The global condition keys that describe the principal."""
        values: dict[str, str | list[str]] = {
            "aws:PrincipalArn": self.role_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:PrincipalIsAWSService": "false",
        }
        for key, value in self.tags.items():
            values[f"aws:PrincipalTag/{key}"] = value
        return values


@dataclass(frozen=True)
class Simulation:
    """One authorization question."""

    principal: str
    action: str
    resource: str
    resource_account: str
    context: Mapping[str, str | Sequence[str]]
    identity_policies: Sequence[tuple[str, Mapping[str, Any]]]
    resource_policy: Mapping[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """iam-simulate's Simulation object."""
        document: dict[str, Any] = {
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {"resource": self.resource, "accountId": self.resource_account},
                "contextVariables": {
                    k: (v if isinstance(v, str) else list(v)) for k, v in sorted(self.context.items())
                },
            },
            "identityPolicies": [{"name": name, "policy": policy} for name, policy in self.identity_policies],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
        }
        if self.resource_policy is not None:
            document["resourcePolicy"] = self.resource_policy
        return document


class PolicyEvaluator:
    """A long-lived ``node server.js``; :meth:`decide` is thread-safe (one question at a time)."""

    def __init__(self, directory: Path = SIMULATOR_DIR) -> None:
        self.directory = directory
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Decision] = OrderedDict()
        self._next_id = 0
        self.evaluations = 0  # simulations node answered (cache misses)

    def _start(self) -> subprocess.Popen[str]:
        node = shutil.which("node")
        if node is None:
            raise EvaluatorError("node is not installed: the local cloud's IAM evaluator needs it")
        if not (self.directory / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise EvaluatorError(
                f"@cloud-copilot/iam-simulate is not installed in {self.directory}: run `make setup` "
                f"(npm ci --prefix {self.directory})"
            )
        return subprocess.Popen(  # noqa: S603 - our own script, no shell
            [node, str(self.directory / "server.js")],
            cwd=self.directory,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def decide(self, simulation: Simulation) -> Decision:
        """The decision AWS would make (cached by the whole simulation)."""
        document = simulation.document()
        key = json.dumps(document, sort_keys=True, separators=(",", ":"))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            decision = self._ask(document)
            self._cache[key] = decision
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
            return decision

    def _ask(self, document: dict[str, Any]) -> Decision:
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        self._next_id += 1
        process.stdin.write(json.dumps({"id": self._next_id, "simulation": document}) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            self._process = None
            raise EvaluatorError("the IAM evaluator (node) exited")
        reply = json.loads(line)
        self.evaluations += 1
        if "error" in reply:
            raise EvaluatorError(f"iam-simulate refused the simulation: {reply['error'][:2000]}")
        return Decision(reply["result"])

    def close(self) -> None:
        """Stop the node process (it is started again on the next question)."""
        with self._lock:
            if self._process is not None:
                if self._process.stdin is not None:
                    self._process.stdin.close()
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
                self._process = None
