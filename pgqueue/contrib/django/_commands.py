"""Management commands that run pgqueue's own command line inside the Django project: the same options as
``pgqueue ...`` (click parses them, not Django), after ``django.setup()``, on the project's database."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

# Django's options of every command that pgqueue's commands do not have (-v/--verbosity is left out:
# `pgqueue worker -v` is pgqueue's --verbose). manage.py has applied --settings and --pythonpath already.
_DJANGO_FLAGS = {"--traceback": "traceback", "--no-color": "no_color", "--force-color": "force_color",
                 "--skip-checks": "skip_checks"}
_DJANGO_VALUES = {"--settings": "settings", "--pythonpath": "pythonpath"}


class PassThroughParser(CommandParser):
    """Keeps Django's own options of every command and hands everything else, untouched, to click."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        options: dict[str, Any] = {"verbosity": 1, "settings": None, "pythonpath": None, "traceback": False,
                                   "no_color": False, "force_color": False, "skip_checks": False}
        rest: list[str] = []
        words = list(args or ())
        while words:
            word = words.pop(0)
            name, equals, value = word.partition("=")
            if word == "--":
                rest += [word, *words]
                break
            if word in _DJANGO_FLAGS:
                options[_DJANGO_FLAGS[word]] = True
            elif name in _DJANGO_VALUES and (equals or words):
                options[_DJANGO_VALUES[name]] = value if equals else words.pop(0)
            else:
                rest.append(word)
        return argparse.Namespace(args=rest, **options)


class PgQueueCommand(BaseCommand):
    """Runs ``command`` (one of pgqueue's click commands) with the arguments given on the command line, or to
    ``call_command``; ``--dsn`` defaults to pgqueue's database in this project (pgqueue.contrib.django.dsn)."""

    command: click.Command

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return PassThroughParser(prog=f"{os.path.basename(prog_name)} {subcommand}", add_help=False,
                                 called_from_command_line=getattr(self, "_called_from_command_line", None))

    def print_help(self, prog_name: str, subcommand: str) -> None:
        with click.Context(self.command, info_name=f"{os.path.basename(prog_name)} {subcommand}") as ctx:
            click.echo(self.command.get_help(ctx))

    def arguments(self, args: list[str]) -> list[str]:
        """The arguments given to the click command: ``args`` and a --dsn, if it takes one and none is given."""
        from . import dsn

        command = self.command
        if isinstance(command, click.Group):
            name = next((a for a in args if not a.startswith("-")), None)
            command = command.commands.get(name or "", command)
        takes_dsn = any(p.name == "dsn" for p in command.params)
        given = any(a in ("--dsn", "-u") or a.startswith(("--dsn=", "-u")) for a in args)
        if takes_dsn and not given and "--help" not in args:
            return [*args, "--dsn", dsn()]
        return args

    def handle(self, *args: str, **options: Any) -> None:
        connections.close_all()  # no socket of Django's shared with the processes a worker forks
        try:
            self.command.main(args=self.arguments(list(args)), prog_name=self._prog(), standalone_mode=True)
        except SystemExit as exc:
            if exc.code in (0, None):
                return
            if self._called_from_command_line:
                raise
            raise CommandError(f"{self._prog()} exited with status {exc.code}",
                               returncode=exc.code if isinstance(exc.code, int) else 1) from None

    def _prog(self) -> str:
        return f"manage.py {self.__module__.rpartition('.')[2]}"
