"""Finding, describing and running the `mi-coordinator` program."""
from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("magicinit")

#: Environment variable naming the `mi-coordinator` executable to use.
COORDINATOR_ENV = "MAGICINIT_COORDINATOR"

BUILD_HINT = (
    "build it in the MagicInit repository with "
    "`swift build -c release --product mi-coordinator && swift build -c release --product mi-worker`, "
    f"then put .build/release on PATH or set {COORDINATOR_ENV}=/path/to/mi-coordinator"
)


class MagicInitError(RuntimeError):
    """MagicInit could not initialise the model; the message says what and where."""


def _repository_builds() -> list[Path]:
    """`.build/release/mi-coordinator` of the repository this package lives in (a source
    tree or an editable install: python/magicinit/ -> the repository root) and of the current
    folder and its parents (a user working inside a clone)."""
    starts = [Path(__file__).resolve().parent.parent.parent, Path.cwd().resolve()]
    candidates = []
    for start in starts:
        for folder in [start, *start.parents]:
            if (folder / "Package.swift").is_file():
                candidates.append(folder / ".build" / "release" / "mi-coordinator")
                break
    return candidates


def find_coordinator() -> str:
    """The `mi-coordinator` executable: `$MAGICINIT_COORDINATOR`, else `mi-coordinator` on
    PATH, else the repository's release build.

    Raises:
        MagicInitError: none was found (the message says how to build it), or
            `$MAGICINIT_COORDINATOR` names no executable file.
    """
    named = os.environ.get(COORDINATOR_ENV)
    if named:
        if os.path.isfile(named) and os.access(named, os.X_OK):
            return named
        raise MagicInitError(f"{COORDINATOR_ENV}={named} is not an executable file; {BUILD_HINT}")
    on_path = shutil.which("mi-coordinator")
    if on_path:
        return on_path
    tried = _repository_builds()
    for candidate in tried:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    where = (f"nor at {', '.join(str(c) for c in tried)}" if tried
             else "and neither this package nor the current folder is inside a MagicInit clone")
    raise MagicInitError(f"mi-coordinator not found: {COORDINATOR_ENV} is unset, it is not on PATH, {where}; {BUILD_HINT}")


_options_cache: dict[tuple[str, float], dict[str, dict]] = {}


def coordinator_options(coordinator: str) -> dict[str, dict]:
    """The command-line options `coordinator` offers, read from its own description
    (`--experimental-dump-help`, swift-argument-parser's JSON): long name (without `--`) ->
    `{"kind": "option" | "flag", "values": [choices] or None, "default": str or None}`.

    Raises:
        MagicInitError: the program could not describe itself.
    """
    key = (coordinator, os.path.getmtime(coordinator))
    if key in _options_cache:
        return _options_cache[key]
    try:
        described = subprocess.run([coordinator, "--experimental-dump-help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MagicInitError(f"{coordinator}: cannot run it to list its options: {error}") from error
    try:
        arguments = json.loads(described.stdout)["command"]["arguments"]
    except (ValueError, KeyError, TypeError) as error:
        raise MagicInitError(
            f"{coordinator} --experimental-dump-help did not describe the options (exit {described.returncode}): "
            f"{described.stderr.strip()[-500:]}") from error
    options = {}
    for argument in arguments:
        for name in argument.get("names") or []:
            if name.get("kind") == "long":
                options[name["name"]] = {"kind": argument.get("kind"), "values": argument.get("allValues"),
                                         "default": argument.get("defaultValue")}
    _options_cache[key] = options
    return options


def run_coordinator(coordinator: str, arguments: list[str]) -> None:
    """Runs `coordinator` with `arguments`; each line it writes to standard error is logged
    on the `magicinit` logger (INFO), its standard output at DEBUG.

    Raises:
        MagicInitError: it exited non-zero; the message holds its last lines of output.
    """
    command = [coordinator, *arguments]
    log.info("running %s", " ".join(command))
    tail: collections.deque[str] = collections.deque(maxlen=30)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            # The live progress line redraws itself with carriage returns.
            line = line.rsplit("\r", 1)[-1]
            if line:
                tail.append(line)
                log.info("%s", line)
        status = process.wait()
    if status != 0:
        how = f"signal {status - 128}" if status > 128 else f"exit status {status}"
        if status < 0:
            how = f"signal {-status}"
        raise MagicInitError(f"mi-coordinator failed ({how}):\n" + "\n".join(tail))
