"""The interactive ``llada chat`` loop: history, slash commands, multi-line input, Ctrl-C and Ctrl-D."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from llada_cli.common import emit_json, read_history, result_dict
from llada_cli.genopts import normalize_key, set_options
from llada_cli.messages import save_messages
from llada_cli.view import present

PROMPT = ">>> "
MORE = "... "
FENCE = '"""'
HELP = f"""\
/set KEY VALUE   set generation options, several at once: /set max_tokens 12 block_length 4
                 (applied together or not at all; /set stop none clears; /set alone lists them)
/system TEXT     set the system prompt, keeping the conversation (/system alone shows it)
/reset           forget the conversation (the system prompt stays)
/save FILE       write the conversation as JSON
/load FILE       continue a conversation written by /save
/help            this list
/exit            leave (Ctrl-D too)
Multi-line input: start with {FENCE} and end with {FENCE}. Ctrl-C cancels the answer being written."""


class ChatRepl:
    """A multi-turn conversation on a ``ChatSession``, read line by line from ``read`` (``input``)."""

    def __init__(
        self, llm: Any, session: Any, *, live: bool, as_json: bool, read: Callable[[str], str] = input
    ) -> None:
        self.llm = llm
        self.session = session
        self.live = live
        self.as_json = as_json
        self.read = read

    # -- output ------------------------------------------------------------------------------------

    @staticmethod
    def say(text: str) -> None:
        """A note from the REPL itself (dim on a terminal)."""
        click.secho(text, dim=True)

    @staticmethod
    def fail(text: str) -> None:
        click.secho(f"error: {text}", fg="red")

    # -- loop --------------------------------------------------------------------------------------

    def run(self, banner: str = "") -> None:
        """Read, answer, repeat; returns on Ctrl-D or ``/exit``."""
        if banner:
            self.say(banner)
        while True:
            try:
                text = self.read_message()
            except KeyboardInterrupt:
                click.echo()
                self.say("(Ctrl-D or /exit to leave)")
                continue
            except EOFError:
                click.echo()
                return
            if not text:
                continue
            if text.startswith("/") and not text.startswith(FENCE):
                if not self.command(text):
                    return
                continue
            self.answer(text)

    def read_message(self) -> str:
        """One line, or a block from a line starting with ``\"\"\"`` to a line ending with ``\"\"\"``."""
        line = self.read(PROMPT)
        if not line.lstrip().startswith(FENCE):
            return line.strip()
        body = line.lstrip()[len(FENCE) :]
        if body.rstrip().endswith(FENCE):
            return body.rstrip()[: -len(FENCE)].strip()
        lines = [body]
        while True:
            more = self.read(MORE)
            if more.rstrip().endswith(FENCE):
                lines.append(more.rstrip()[: -len(FENCE)])
                return "\n".join(lines).strip()
            lines.append(more)

    def answer(self, text: str) -> None:
        """Send ``text``; Ctrl-C cancels the answer and leaves the conversation as it was."""
        from llada_cli.errors import classify, one_line

        dropped = len(self.session.dropped)
        try:
            result = present(self.llm, self.session.stream(text), live=self.live, context=False)
        except KeyboardInterrupt:
            click.echo()
            self.say("cancelled; the conversation is unchanged")
            return
        except Exception as exc:  # one bad turn must not end the conversation
            self.fail(one_line(classify(exc)[1]) + "; the conversation is unchanged")
            return
        if len(self.session.dropped) > dropped:
            n = len(self.session.dropped) - dropped
            self.say(f"(the conversation outgrew {self.window()}: dropped the {n} oldest message(s))")
        if self.as_json:
            emit_json(result_dict(result))
        elif result.text:
            click.echo(result.text)
        else:
            self.say(f"(empty answer: the model ended its turn at once; finish_reason {result.finish_reason})")

    # -- slash commands ----------------------------------------------------------------------------

    def window(self) -> str:
        """The window the history is kept in, in words."""
        keep, limit = self.session.windows()
        return (
            f"the model's {keep}-token trained window" if keep < limit else f"the model's {limit}-token context window"
        )

    def system_prompt(self) -> str | None:
        return next((m["content"] for m in self.session.messages if m.get("role") == "system"), None)

    def command(self, line: str) -> bool:
        """Run a slash command; False means leave."""
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit", "bye"):
            return False
        handler = {
            "help": lambda _: click.echo(HELP),
            "reset": self._reset,
            "system": self._system,
            "save": self._save,
            "load": self._load,
            "set": self._set,
        }.get(name)
        if handler is None:
            self.fail(f"unknown command /{name}; /help lists the commands")
        else:
            handler(arg)
        return True

    def _reset(self, _: str) -> None:
        self.session.reset(system=self.system_prompt())
        self.say("conversation cleared")

    def _system(self, arg: str) -> None:
        if not arg:
            self.say(self.system_prompt() or "(no system prompt)")
            return
        try:
            self.session.reset(system=arg, messages=self.session.messages)
        except ValueError as exc:
            self.fail(str(exc))
            return
        self.say("system prompt set")

    def _save(self, arg: str) -> None:
        if not arg:
            self.fail("usage: /save FILE")
            return
        try:
            save_messages(arg, self.session.messages)
        except OSError as exc:
            self.fail(f"cannot write {arg}: {exc.strerror}")
            return
        self.say(f"saved {len(self.session.messages)} messages to {arg}")

    def _load(self, arg: str) -> None:
        if not arg:
            self.fail("usage: /load FILE")
            return
        try:
            messages = read_history(arg)
        except OSError as exc:
            self.fail(f"cannot read {arg}: {exc.strerror}")
            return
        except ValueError as exc:
            self.fail(str(exc))
            return
        self.session.reset(messages=messages)
        self.say(f"loaded {len(messages)} messages from {arg}")

    def _set(self, arg: str) -> None:
        if not arg:
            for key, value in self.session.options.model_dump().items():
                click.echo(f"{key} = {value!r}")
            return
        import shlex

        try:
            words = shlex.split(arg)
        except ValueError as exc:
            self.fail(f"usage: /set KEY VALUE [KEY VALUE ...] ({exc})")
            return
        if len(words) % 2:
            if len(words) == 1:
                self.fail("usage: /set KEY VALUE [KEY VALUE ...]")
                return
            words = [words[0], " ".join(words[1:])]  # /set stop some text with spaces
        pairs = list(zip(words[::2], words[1::2]))
        from llada_sdk.errors import LLaDAError

        try:
            options = set_options(self.session.options, pairs)
            used = self.session.check_max_tokens(options.max_tokens)  # the context window, checked now
        except (ValueError, LLaDAError) as exc:
            self.fail(f"{exc}; nothing was changed")
            return
        self.session.options = options
        for key, _ in pairs:
            name = normalize_key(key)
            self.say(f"{name} = {getattr(self.session.options, name)!r}")
        keep, limit = self.session.windows()
        if keep < limit and used + options.max_tokens > keep:
            self.say(
                f"note: with max_tokens {options.max_tokens} a message no longer fits the model's {keep}-token "
                "trained window: it is sent without the history, and answers lose quality"
            )
