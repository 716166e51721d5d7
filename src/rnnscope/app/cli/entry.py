"""The entry point: the typer app every command registers on, and `main`, which runs it and turns every failure into
one line on stderr, `rnnscope <command>: error: <what was expected>, got <what arrived>`.

Exit codes: 0 done; 2 bad input of any kind (an option value, a file, a shape, an unknown option or command, a
path the operating system refuses: too long, under a file, not permitted);
1 anything unexpected (a bug, out of memory, a closed pipe); 130 interrupted. Never a traceback, never a usage
box: `main` runs the click command with standalone_mode=False and maps its exceptions.

Example:
    >>> one_line("expected\\n   one   line")
    'expected one line'
"""

from __future__ import annotations

import errno
import sys
from typing import Sequence

import typer
from typer._click import exceptions as click_exc
from typer.main import get_command

from ...core.errors import InputError

__all__ = ["app", "main", "COMMANDS", "one_line"]

COMMANDS = ("profile", "bptt", "lyapunov", "meanfield", "theory", "phase", "sweep", "results", "tasks", "train", "study",
            "claims", "reproduce", "demo", "serve", "diagnose", "memory")

app = typer.Typer(
    name="rnnscope",
    help="rnnscope: a gradient-flow laboratory for recurrent neural networks. "
         "Exact Jacobian-product profiles, hand-derived BPTT, and a demo of vanishing and exploding gradients.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
)


def one_line(s: str) -> str:
    return " ".join(str(s).split())


def _option_name(e: click_exc.ClickException) -> str | None:
    param = getattr(e, "param", None)
    if param is not None:
        opts = getattr(param, "opts", None) or []
        return opts[0] if opts else getattr(param, "name", None)
    return None


def _usage_message(e: click_exc.UsageError, command: str | None) -> str:
    """Rewrite click's usage errors into 'what: expected X, got Y'."""
    where = f"rnnscope {command} --help" if command else "rnnscope --help"
    if isinstance(e, click_exc.NoSuchOption):
        cmd = getattr(getattr(e, "ctx", None), "command", None)
        known = sorted({o for p in getattr(cmd, "params", []) for o in getattr(p, "opts", []) if o.startswith("-")})
        hint = f" (did you mean {', '.join(sorted(e.possibilities))}?)" if e.possibilities else ""
        return f"option: expected one of {', '.join(known) or 'the options in ' + where}, got {e.option_name!r}{hint}"
    if isinstance(e, click_exc.MissingParameter):
        return f"{_option_name(e)}: expected a value (the option is required), got none"
    if isinstance(e, click_exc.BadParameter):
        msg = e.message.removeprefix("Value error, ")
        if "expected" not in msg:
            msg = f"expected a valid value, got: {msg}"
        return f"{_option_name(e) or 'argument'}: {msg}"
    if isinstance(e, click_exc.BadOptionUsage):
        if "requires an argument" in e.message:
            return f"{e.option_name}: expected a value after the option, got none"
        return f"{e.option_name}: expected a valid use (see {where}), got: {e.message}"
    msg = e.format_message()
    if msg.startswith("Got unexpected extra argument"):
        return f"arguments: expected only options (see {where}), got unexpected extra{msg.removeprefix('Got unexpected extra')}"
    return f"expected valid arguments (see {where}), got: {msg}"


LONGEST_WORD = 160  # a longer word of an error line (a 5,000-character path) is shown by its ends and length

# operating-system errors about a path the user gave: bad input (exit 2), not a bug
_PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                errno.ENOENT, errno.ELOOP, errno.EEXIST)


def shorten_words(s: str, longest: int = LONGEST_WORD) -> str:
    """Every word of s longer than `longest` as its first and last characters and its length.

    Example:
        >>> shorten_words("got '" + "x" * 500 + "'", longest=20)
        "got 'xxxxxxxxx...xxxx' (a word of 502 characters)"
    """
    def short(w: str) -> str:
        if len(w) <= longest:
            return w
        head = longest // 2
        return f"{w[:head]}...{w[-(longest // 4):]} (a word of {len(w)} characters)"
    return " ".join(short(w) for w in s.split(" "))


def _path_error(e: OSError) -> str:
    """'path: expected a file name this system can use, got 'NAME' (File name too long)' for an OSError that
    names the user's path."""
    name = e.filename if e.filename is not None else "a path"
    return f"path: expected a file or folder name this system can use, got {str(name)!r} ({e.strerror})"


def _error(command: str | None, msg: str) -> None:
    prefix = f"rnnscope {command}" if command else "rnnscope"
    try:
        sys.stderr.write(f"{prefix}: error: {shorten_words(one_line(msg))}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default sys.argv[1:]) and return the exit code (0, 1, 2 or 130)."""
    args = list(sys.argv[1:] if argv is None else argv)
    args = [a if isinstance(a, str) else str(a) for a in args]
    command = args[0] if args and args[0] in COMMANDS else None
    cmd = get_command(app)
    try:
        if not args:
            args = ["--help"]
        elif not args[0].startswith("-") and command is None:
            raise InputError(f"command: expected one of {', '.join(COMMANDS)}, got {args[0]!r}")
        rv = cmd.main(args=args, prog_name="rnnscope", standalone_mode=False)
    except InputError as e:
        _error(command, str(e))
        return 2
    except click_exc.NoArgsIsHelpError:  # a command group without its subcommand: its help was printed
        return 0
    except click_exc.UsageError as e:
        _error(command, _usage_message(e, command))
        return 2
    except click_exc.ClickException as e:
        _error(command, e.format_message())
        return 2
    except typer.Abort:
        _error(command, "aborted")
        return 1
    except KeyboardInterrupt:
        _error(command, "interrupted")
        return 130
    except MemoryError:
        _error(command, "out of memory: expected a problem that fits in this machine's memory, got a larger one")
        return 1
    except OSError as e:
        if e.errno == errno.EPIPE:  # output piped into a reader that closed (e.g. | head)
            if argv is None:  # the console script: keep the interpreter's final flush quiet
                try:
                    import os
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                except (OSError, ValueError):  # pragma: no cover
                    pass
            return 1
        if e.errno in _PATH_ERRNOS:  # a path of the user's that the system refuses: bad input
            _error(command, _path_error(e))
            return 2
        _error(command, f"unexpected {type(e).__name__}: {e}")
        return 1
    except Exception as e:  # never a traceback: one line, exit 1
        _error(command, f"unexpected {type(e).__name__}: {e} (a bug in rnnscope; please report it with the command)")
        return 1
    if rv == 130:  # typer turns KeyboardInterrupt into Exit(130), which non-standalone mode returns
        _error(command, "interrupted")
        return 130
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
