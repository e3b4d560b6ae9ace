"""The one error base. Every failure crawl2model reports to a person derives from `Crawl2ModelError`:
the CLI catches it once and prints one `error:` line (and a hint), exiting with its code; `--debug`
shows the traceback instead. A user's mistake (a config value, a path, a selection) is a `UserError`,
exit 2; anything else that stops a run (a download that keeps failing, a busy workdir) exits 1."""

from __future__ import annotations


class Crawl2ModelError(Exception):
    """A failure reported as one line: `error: <message>` (and `hint: <hint>`), exit code 1."""

    exit_code = 1

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UserError(Crawl2ModelError, ValueError):
    """A mistake the user fixes in what they gave (config, paths, arguments): exit code 2. Also a
    ValueError, so pydantic validators may raise it and callers that expect ValueError still work."""

    exit_code = 2


class NotFound(Crawl2ModelError, LookupError):
    """Something the command needs is not there yet (an output, a run, a checkpoint): exit code 1."""


class Interrupted(Crawl2ModelError):
    """Ctrl-C: finished shards are kept; a rerun resumes. Exit code 130, as a shell reports SIGINT."""

    exit_code = 130
    line = "interrupted: finished shards are kept, rerun to resume"


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    """` (did you mean 'x'?)` for the closest known word, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# Exit codes as the manual lists them (docs/reference/errors.md is generated from this).
EXIT_CODES = {0: "success", 1: "a failure: the run could not finish (details on the error line)",
              2: "a user's mistake: config, path, argument or selection; nothing was run",
              130: "interrupted (Ctrl-C): finished shards are kept, rerun to resume"}  # fmt: skip
