"""Run the real clients headless, each the way its docs tell a user to point it at a gateway,
under strace (support/egress.py) so a test can tell whether anything left loopback.

Every run gets its own home directory: no user configuration, login or cache is read, and
nothing a run writes is seen by the next one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.egress import Egress, outside_traffic, strace_prefix

CLIENTS_DIR = Path(__file__).resolve().parent
REPO = CLIENTS_DIR.parent.parent
NODE_BIN = CLIENTS_DIR / "node_modules" / ".bin"
CLIENT_KEY = "sk-client-of-the-gateway"  # the key each client sends to the gateway
RUN_TIMEOUT_S = 90


def pinned_version(package: str) -> str:
    """The exact version package.json pins (the lock holds the same)."""
    return str(json.loads((CLIENTS_DIR / "package.json").read_text())["dependencies"][package])


@dataclass
class ClientRun:
    returncode: int
    stdout: str
    stderr: str
    output: str  # the client's final answer
    egress: Egress

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


@dataclass
class Sandbox:
    """A fresh home and project directory for one run, with the file the task is about."""

    home: Path
    project: Path
    note: Path
    secret: str

    @classmethod
    def create(cls, root: Path, secret: str) -> Sandbox:
        home, project = root / "home", root / "home" / "project"
        project.mkdir(parents=True)
        note = project / "note.txt"
        note.write_text(f"The secret word is {secret}.\n")
        return cls(home, project, note, secret)

    def base_env(self) -> dict[str, str]:
        # Only what a shell would have: no key or setting of the machine leaks in.
        return {"PATH": os.environ["PATH"], "HOME": str(self.home), "LANG": "C.UTF-8"}


def _run(command: list[str], sandbox: Sandbox, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Egress]:
    log = sandbox.home.parent / f"strace-{len(list(sandbox.home.parent.glob('strace-*')))}.log"
    completed = subprocess.run(
        [*strace_prefix(log), *command],
        cwd=sandbox.project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    return completed, outside_traffic(log)


# ------------------------------------------------------------------ Claude Code


def claude_code(
    sandbox: Sandbox, base_url: str, model: str, prompt: str, extra_env: dict[str, str] | None = None
) -> ClientRun:
    """``claude -p`` with ANTHROPIC_BASE_URL at the gateway. CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC
    turns off its telemetry, error reports, auto-updater and the connectivity check."""
    env = {
        **sandbox.base_env(),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": CLIENT_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **(extra_env or {}),
    }
    command = [str(NODE_BIN / "claude"), "-p", prompt, "--model", model, "--allowedTools", "Read"]
    completed, egress = _run([*command, "--output-format", "json"], sandbox, env)
    try:
        result: Any = json.loads(completed.stdout)
    except json.JSONDecodeError:
        result = {}
    output = str(result.get("result", "")) if isinstance(result, dict) and not result.get("is_error") else ""
    return ClientRun(completed.returncode, completed.stdout, completed.stderr, output, egress)


# ------------------------------------------------------------------ Codex CLI

CODEX_KEY_ENV = "GATEWAY_API_KEY"


def codex_config(base_url: str, *, websockets: bool = False) -> str:
    """CODEX_HOME/config.toml: the gateway as a Responses provider, and no traffic of Codex's
    own (its plugin marketplace sync runs `git ls-remote` on GitHub and looks up chatgpt.com)."""
    lines = [
        'model_provider = "gateway"',
        "check_for_update_on_startup = false",
        "",
        "[model_providers.gateway]",
        'name = "LLM gateway"',
        f'base_url = "{base_url}/v1"',
        f'env_key = "{CODEX_KEY_ENV}"',
        'wire_api = "responses"',
    ]
    if websockets:
        lines.append("supports_websockets = true")
    lines += ["", "[features]", "plugins = false", "", "[analytics]", "enabled = false", ""]
    return "\n".join(lines)


def codex(sandbox: Sandbox, base_url: str, model: str, prompt: str, *, websockets: bool = False) -> ClientRun:
    codex_home = sandbox.home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(codex_config(base_url, websockets=websockets))
    env = {**sandbox.base_env(), "CODEX_HOME": str(codex_home), CODEX_KEY_ENV: CLIENT_KEY}
    command = [str(NODE_BIN / "codex"), "exec", "--skip-git-repo-check", "-m", model, prompt]
    completed, egress = _run(command, sandbox, env)
    output = completed.stdout if completed.returncode == 0 else ""
    return ClientRun(completed.returncode, completed.stdout, completed.stderr, output, egress)


# ------------------------------------------------------------------ OpenAI Agents SDK


def agents_sdk(sandbox: Sandbox, base_url: str, model: str, prompt: str, *, api: str, stream: bool) -> ClientRun:
    env = {**sandbox.base_env(), "OPENAI_API_KEY": CLIENT_KEY, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.clients.agents_app", "--base-url", f"{base_url}/v1"]
    command += ["--model", model, "--api", api, *(["--stream"] if stream else []), prompt]
    completed, egress = _run(command, sandbox, env)
    output = completed.stdout if completed.returncode == 0 else ""
    return ClientRun(completed.returncode, completed.stdout, completed.stderr, output, egress)
