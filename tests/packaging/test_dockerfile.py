"""The Dockerfile and .dockerignore, read statically (no Docker engine runs the suite), the
Dockerfile with BuildKit's own parser: a build stage makes the wheel; the runtime stage installs
only that wheel, runs as a user other than root with a writable instance directory, checks its
readiness and starts with ``idp init``, then ``idp serve``."""

from __future__ import annotations

import fnmatch
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath

import dockerfile
import pytest

from testkit.servers import ROOT
from tests.packaging.build_context import LEFT_OUT, allowed, patterns


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    commands: tuple[dockerfile.Command, ...]

    def all(self, instruction: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd.upper() == instruction]

    def one(self, instruction: str) -> dockerfile.Command:
        (found,) = self.all(instruction)
        return found


def _stages() -> list[Stage]:
    groups: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd.upper() == "FROM":
            groups.append([])
        assert groups, f"{command.original!r} comes before any FROM"
        groups[-1].append(command)
    stages = []
    for commands in groups:
        image, *alias = commands[0].value
        assert len(alias) in (0, 2) and alias[:1] in ([], ["AS"]), commands[0].original
        stages.append(Stage(image, alias[1] if alias else None, tuple(commands[1:])))
    return stages


def _commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script joined by ``&&`` or ``;``."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _option(args: list[str], *names: str) -> str:
    for i, arg in enumerate(args):
        if arg in names:
            return args[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    raise AssertionError(f"none of {names} in {args}")


def _runs(stage: Stage) -> list[list[str]]:
    return [c for run in stage.all("RUN") for c in _commands(" ".join(run.value))]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return _stages()


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def port(runtime: Stage) -> str:
    (exposed,) = runtime.one("EXPOSE").value
    return exposed.split("/")[0]


def test_the_runtime_stage_copies_only_the_wheel_from_the_build_stage(
    stages: list[Stage], runtime: Stage
) -> None:
    assert len(stages) >= 2, "a build stage and a runtime stage"
    assert runtime.image == "python:3.11-slim"
    builds = {s.name: s for s in stages[:-1]}
    copies = runtime.all("COPY")
    assert copies and not runtime.all("ADD")
    installed = []
    for copy in copies:
        (source_stage,) = [f.split("=", 1)[1] for f in copy.flags if f.startswith("--from=")]
        build = builds[source_stage]
        (wheel,) = [c for c in _runs(build) if c[:2] == ["pip", "wheel"]]
        assert "--no-deps" in wheel, "the build stage makes Stepwise's wheel only"
        *sources, dest = copy.value
        assert sources == [_option(wheel, "--wheel-dir", "-w")], copy.original
        installed.append(dest)
    (install,) = [c for c in _runs(runtime) if c[:2] == ["pip", "install"]]
    targets = [a for a in install[2:] if not a.startswith("-")]
    assert targets and all(
        any(PurePosixPath(t).match(f"{d.rstrip('/')}/*.whl") for d in installed) for t in targets
    ), f"the runtime stage installs {targets}, not the copied wheel"


def test_the_image_runs_as_a_user_other_than_root(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].value[0].split(":")[0]
    assert user not in ("root", "0")
    made = [c for c in _runs(runtime) if c[0] == "useradd"]
    assert made and user in (made[-1][-1], _option(made[-1], "--uid", "-u"))


def test_the_instance_directory_is_the_users(runtime: Stage) -> None:
    values = [v for env in runtime.all("ENV") for v in env.value]
    settings = dict(zip(values[::2], values[1::2], strict=True))
    instance = settings["IDP_INSTANCE_PATH"]
    (workdir,) = runtime.all("WORKDIR")[-1].value
    assert PurePosixPath(instance).is_absolute()
    assert PurePosixPath(instance).is_relative_to(workdir), "the instance directory is not in it"
    (user,) = [c[-1] for c in _runs(runtime) if c[0] == "useradd"]
    created = [c for c in _runs(runtime) if c[:2] == ["install", "-d"] and instance in c]
    assert created and _option(created[0], "-o", "--owner") == user


def test_the_healthcheck_asks_for_readiness(runtime: Stage, port: str) -> None:
    check = runtime.one("HEALTHCHECK")
    assert check.value[0] == "CMD", "HEALTHCHECK NONE, or no command"
    probe = " ".join(check.value[1:])
    assert f"127.0.0.1:{port}/readyz" in probe
    assert any(f.startswith("--timeout=") for f in check.flags), "an unbounded check"


def test_the_command_runs_idp_init_then_idp_serve(runtime: Stage, port: str) -> None:
    command = runtime.one("CMD")
    assert command.json, "the exec form: the shell of the shell form would not pass on signals"
    assert list(command.value[:2]) == ["sh", "-c"]
    init, serve = _commands(command.value[2])
    assert init == ["idp", "init"]
    # exec: granian, not sh, gets SIGTERM from `docker stop`.
    assert serve[:3] == ["exec", "idp", "serve"]
    assert _option(serve, "--host") == "0.0.0.0"  # noqa: S104 (the container's own interface)
    assert _option(serve, "--port") == port


def test_the_build_context_holds_what_the_wheel_is_built_from() -> None:
    rules = patterns()
    assert rules[0] == "*", ".dockerignore is an allowlist: everything else stays out"
    assert rules[-len(LEFT_OUT) :] == [f"**/{name}" for name in LEFT_OUT]
    assert set(rules[1 : -len(LEFT_OUT)]) == {f"!{path}" for path in allowed()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").exists() and any(fnmatch.fnmatch(path.name, i) for i in includes)
    }
    assert packages >= {"idp", "flows", "factors", "demo"}
    assert {"pyproject.toml", project["project"]["readme"], *packages} <= set(allowed())
    for secret in ("instance", ".env", ".venv", ".git", "tests"):
        assert secret not in allowed()
