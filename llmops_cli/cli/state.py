"""Per-invocation state: the global options, and settings loaded on first use (not at import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError
from llmops_cli.wiring import Workspace

if TYPE_CHECKING:
    from llmops_cli.settings import LoadedSettings, Settings

_STATE: AppState | None = None


@dataclass
class AppState:
    config: str | None = None
    profile: str | None = None
    format: str | None = None  # the root --format / LLMOPS_FORMAT (table, json, yaml, jsonl); None: table
    _cache: dict[Any, Any] = field(default_factory=dict)
    _checked: bool = False

    def load(
        self, flags: dict[str, Any] | None = None, profile: str | None = None, flag_names: dict[str, str] | None = None
    ) -> LoadedSettings:
        """Settings for this command; ``flag_names`` spells the flags that set keys when they differ from
        settings.FLAG_NAMES (so an error names the flag the user typed)."""
        from llmops_cli.settings import load_settings  # pydantic: not at import, so that --help stays cheap

        if not self._checked:
            self._checked = True
            self.warn_config_typos()
        return load_settings(self.config, flags=flags, profile=profile or self.profile, flag_names=flag_names)

    def warn_config_typos(self) -> None:
        """A warning line for each unknown LLMOPS_* variable and config key (did-you-mean), before the command's
        first settings load and so before any work. Here rather than in the root callback: --help, completion and
        commands that read no settings stay free of the settings import."""
        from llmops_cli import config_check
        from llmops_cli.cli.output import Output
        from llmops_cli.errors import LlmopsError
        from llmops_cli.settings import find_config_file

        try:
            path = find_config_file(self.config)
        except LlmopsError:  # a missing --config file: loading reports it
            path = None
        out = Output()
        for msg in config_check.problems(path):
            out.warn(msg)


# What commands build their workspace with. Tests install a factory of fake workspaces here
# (tests/support/fakes.py: use_fake_workspaces): the one seam, instead of patching each builder in wiring.
workspace_factory: Callable[[Settings], Workspace] = Workspace


def workspace(settings: Settings) -> Workspace:
    """The command's workspace (use it in a ``with`` block: what it opened is closed at the end)."""
    return workspace_factory(settings)


def set_state(s: AppState) -> None:
    global _STATE
    _STATE = s


def state() -> AppState:
    global _STATE
    if _STATE is None:
        _STATE = AppState()
    return _STATE


def parse_key_values(
    pairs: list[str] | None,
    what: str = "--where",
    *,
    value: Callable[[str], Any] | None = None,
    hint: str | None = None,
) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``: split at the first ``=``, key stripped. ``value`` turns the text
    after the ``=`` into the value (default: stripped, then ints, floats, true/false converted); a later key wins.
    (Quality gates, METRIC=NUMBER with their own checks, are parsed by ``core.eval.gates.parse_gates``.)"""
    convert = value or (lambda v: _scalar(v.strip()))
    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise UsageError(f"{what} {p!r} is not key=value", hint=hint or f"write it as {what} key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = convert(v)
    return out


def _scalar(v: str) -> Any:
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v
