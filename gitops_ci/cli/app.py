"""The click group, shared options and the one top-level error handler."""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import click

from gitops_ci import __version__, logs
from gitops_ci.errors import EXIT_INTERRUPTED, EXIT_USAGE, GitopsCiError

F = TypeVar("F", bound=Callable[..., Any])


class _Invocation:
    debug = False


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _Invocation.debug = True
        logs.configure(debug=True)


def common_options(func: F) -> F:
    """`--debug` and `--format` on every command (so they may follow the command name)."""
    func = click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        envvar="GITOPS_FORMAT",
        show_default=True,
        help="Result format on stdout.",
    )(func)
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        envvar="GITOPS_DEBUG",
        callback=_set_debug,
        help="Log every step and show tracebacks.",
    )(func)


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists them all), so that
    `gitops-ci set-image` never pays for GitPython, python-gitlab, requests or kubernetes."""

    commands_by_name: ClassVar[dict[str, str]] = {
        "set-image": "gitops_ci.cli.set_image:set_image_command",
        "deploy": "gitops_ci.cli.deploy:deploy_command",
        "promote": "gitops_ci.cli.promote:promote_command",
        "sync": "gitops_ci.cli.sync:sync_command",
        "wait": "gitops_ci.cli.wait:wait_command",
        "validate": "gitops_ci.cli.validate:validate_command",
        "review": "gitops_ci.cli.review:review_command",
        "init": "gitops_ci.cli.onboard:init_command",
        "new-app": "gitops_ci.cli.onboard:new_app_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.commands_by_name})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands_by_name:
            module, attribute = self.commands_by_name[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return _showing_envvars(command)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            names = self.list_commands(ctx)
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(names)}"
            raise click.UsageError(f"no command {name!r}: {hint}", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its whole first sentence (click cuts it to the terminal's width)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=200)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _showing_envvars(command: click.Command) -> click.Command:
    """In CI the environment variables are the main interface: every option's help names its own."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    return command


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="gitops-ci")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="See --debug of each command.",
)
def cli() -> None:
    """The CI half of GitOps: update kustomize overlays in a manifest repo, push or open merge requests,
    trigger Argo CD or Flux, and wait until the cluster runs the new revision."""


def emit(text: str) -> None:
    """Results go to stdout; logs go to stderr."""
    if text:
        click.echo(logs.shown(text), nl=False)


def _fail(message: str, *, one_line: bool = False) -> None:
    """The error, masked; bad input on one line (a value it quotes may hold a line break)."""
    shown = logs.one_line(logs.mask(message), limit=2000) if one_line else logs.shown(message)
    click.echo(f"gitops-ci: error: {shown}", err=True)


def run(argv: Sequence[str] | None = None) -> int:
    _Invocation.debug = False
    _escape_undecodable_output()
    logs.configure()
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="gitops-ci", standalone_mode=False
        )
    except GitopsCiError as err:
        if _Invocation.debug:
            import traceback

            logs.get_logger(logs.ROOT).debug("%s", traceback.format_exc())
        _fail(str(err), one_line=err.exit_code == 2)
        return err.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as err:
        hint = (
            f" (see: {err.ctx.command_path} --help)" if isinstance(err, click.UsageError) and err.ctx else ""
        )
        _fail(err.format_message().replace("\n", " ") + hint)
        return EXIT_USAGE if isinstance(err, click.UsageError) else err.exit_code
    except Exception as err:  # a bug: say so, in one line unless --debug
        if _Invocation.debug:
            import traceback

            logs.get_logger(logs.ROOT).error("%s", traceback.format_exc())
        _fail(f"unexpected {type(err).__name__}: {err} (a gitops-ci bug; re-run with --debug for details)")
        return 3
    return result if isinstance(result, int) else 0


def main() -> None:
    code = run()
    if sys.gettrace() is not None or sys.getprofile() is not None:
        sys.exit(code)  # a coverage or profiling tool writes its data at exit
    # Everything we opened is closed by now; the interpreter's teardown would only free each module in turn
    # (~13 ms for a deploy's ~300). Flush what was written, and leave.
    if "logging" in sys.modules:  # set-image never imports it
        sys.modules["logging"].shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: nobody is reading anymore
        pass
    os._exit(code)


def _escape_undecodable_output() -> None:
    """A file name git gives as undecodable bytes reaches output as a lone surrogate: it is written as its
    escape (`\\udcff`, which JSON reads back), not a UnicodeEncodeError on a UTF-8 terminal."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
