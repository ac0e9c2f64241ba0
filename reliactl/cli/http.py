"""`reliactl http`: a curl-like request through the rate limiter, a breaker and retries."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

from reliactl._settings import max_retries_error
from reliactl.cli._fastrt import require_text, usage
from reliactl.cli.context import app_context
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import error, info, printable, reports_errors

if TYPE_CHECKING:
    import typer

    from reliactl.cli.options import MaxRetriesOption, hidden
    from reliactl.config import Config

_METHOD = re.compile(r"[A-Za-z]{1,20}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


_usage = usage  # one line, exit 2


def _parse_headers(raw: list[str]) -> list[tuple[str, str]]:
    headers = []
    for index, item in enumerate(raw, start=1):
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _TOKEN.fullmatch(name):
            # The text may be a bare secret: never echo it.
            raise _usage(f"-H/--header #{index} is not 'Name: value'")
        if "\r" in value or "\n" in value or not value.isascii():
            raise _usage(f"header {name}: the value must be one line of ASCII text")
        headers.append((name, value))
    return headers


def _read_data(data: str) -> bytes:
    if data == "-":
        return (
            sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        )
    if data.startswith("@"):
        path = data[1:]
        if path == "-":
            return _read_data("-")
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise _usage(f"--data {data}: {exc.strerror or exc}") from None
    return os.fsencode(data)  # the bytes given, as curl sends them, even if not UTF-8


def _raw(headers: Any) -> list[tuple[str, str]]:
    """Headers as sent or received (original case), as text that gives back the wire bytes:
    UTF-8, a byte that is not UTF-8 kept as itself (``surrogateescape``), so ``-v`` shows a
    wire byte 0x9b as ``\\x9b`` (latin-1, as httpx decodes, made it U+009B, ``\\xc2\\x9b``)."""
    return [(_wire_text(k), _wire_text(v)) for k, v in headers.raw]


def _wire_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _duration(option: str, text: str, *, zero_ok: bool = False) -> float:
    from reliactl.cli._fastrt import duration_option

    return duration_option(option, text, zero=zero_ok)


def _limiter(rate: str | None, rate_key: str | None, host: str, config: Config, store: Any) -> Any:
    from reliactl.ratelimit import limiter_for

    key = rate_key or f"http:{host}"
    try:
        return limiter_for(key, config, rates=rate, store=store)
    except ValueError as exc:
        option = "--rate" if rate else "--rate-key"
        raise _usage(f"{option}: {exc}") from None


def typer_names() -> None:
    """Give ``http``'s (string) annotations the names Typer evaluates when it registers the
    command. The module imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``http()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "MaxRetriesOption", "hidden")


def http(
    ctx: typer.Context,
    method: Annotated[
        str, typer.Argument(metavar="METHOD", help="GET, POST, PUT, PATCH, DELETE, HEAD, ...")
    ],
    url: Annotated[str, typer.Argument(metavar="URL", help="http:// or https:// URL.")],
    header: Annotated[
        list[str] | None,
        typer.Option("-H", "--header", metavar="'NAME: VALUE'", help="Request header; repeatable."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "-d",
            "--data",
            metavar="@FILE|-|TEXT",
            help="Request body: @file, - for stdin, or text.",
        ),
    ] = None,
    json_body: Annotated[
        bool,
        typer.Option("--json-body", help="The body is JSON: checked, sent as application/json."),
    ] = False,
    breaker: Annotated[
        str | None,
        typer.Option(
            "--breaker",
            metavar="NAME",
            help="Go through the persistent circuit breaker NAME (exit 69 while it is open).",
        ),
    ] = None,
    max_retries: MaxRetriesOption = None,
    retries: Annotated[int | None, hidden("--retries", metavar="N")] = None,  # old name
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            metavar="SPEC",
            help="Rate limit shared by every process, e.g. 60/minute or '10/second;500/hour'.",
        ),
    ] = None,
    rate_key: Annotated[
        str | None,
        typer.Option(
            "--rate-key",
            metavar="NAME",
            help="Budget to share (default: http:HOST). Alone, uses rate_limit.limits.NAME"
            " (or RATE_LIMIT_OPENAI_RPM for 'openai').",
        ),
    ] = None,
    rate_wait: Annotated[
        str | None,
        typer.Option(
            "--rate-wait",
            metavar="DURATION",
            help="Wait at most this long for a rate-limit token, else exit 75"
            " (0: no wait; default: rate_limit.max_wait, 1m).",
        ),
    ] = None,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Deadline of each attempt: connecting, sending and the whole answer.",
        ),
    ] = "10s",
    fail: Annotated[
        bool,
        typer.Option(
            "--fail", "-f", help="Exit 22 on HTTP status >= 400 (no body printed), as curl."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "-v", "--verbose", help="Request and response headers to stderr (secrets ***)."
        ),
    ] = False,
) -> None:
    """Send one HTTP request: rate limit -> breaker -> request -> retries; body to stdout.

    Retries connection errors, timeouts, 429 and 5xx (honouring Retry-After); POST and PATCH
    only when the request provably was not sent. --timeout bounds each attempt whole (a
    server that trickles its answer is cut off), retry.max_elapsed all of them; the body is
    streamed to stdout as it arrives. Exit 0 with any answer (22 with --fail for
    >= 400), 7 when no answer came after the retries, 69 breaker open, 75 no rate-limit
    token in time. Secret headers (Authorization, Cookie, X-Api-Key, tokens) and URL
    passwords or keys are shown as *** in every message.
    """
    _run(
        ctx,
        method=method,
        url=url,
        header=header or [],
        data=data,
        json_body=json_body,
        breaker=breaker,
        retries=max_retries if max_retries is not None else retries,
        rate=rate,
        rate_key=rate_key,
        rate_wait=rate_wait,
        timeout=timeout,
        fail=fail,
        verbose=verbose,
    )


@reports_errors
def _run(  # noqa: C901 - one branch per output mode and exit rule of curl
    ctx: typer.Context,
    *,
    method: str,
    url: str,
    header: list[str],
    data: str | None,
    json_body: bool,
    breaker: str | None,
    retries: int | None,
    rate: str | None,
    rate_key: str | None,
    rate_wait: str | None,
    timeout: str,
    fail: bool,
    verbose: bool,
) -> None:
    import json
    from urllib.parse import urlsplit

    from reliactl._urls import url_problem
    from reliactl.http import host_key, redact_headers, redact_url

    url = require_text("URL", url, url=True)
    for flag, value in (("--breaker", breaker), ("--rate", rate)):
        if value is not None:
            require_text(flag, value)
    if rate_key is not None:  # empty: the default key (http:HOST)
        require_text("--rate-key", rate_key, empty=True)
    if not _METHOD.fullmatch(method):
        raise _usage(f"METHOD must be a word such as GET or POST, got {method[:20]!r}")
    method = method.upper()
    problem = url_problem(url)
    if problem:
        raise _usage(f"URL is not valid: {redact_url(url)}: {problem}")
    headers = _parse_headers(header)
    if retries is not None and max_retries_error(retries):
        raise _usage(f"--max-retries: {max_retries_error(retries)}")
    attempt_timeout = _duration("--timeout", timeout)
    token_wait = None if rate_wait is None else _duration("--rate-wait", rate_wait, zero_ok=True)
    if json_body and data is None:
        raise _usage("--json-body needs --data")
    body = _read_data(data) if data is not None else None
    if json_body and body is not None:
        try:
            json.loads(body)
        except ValueError as exc:
            raise _usage(f"--data is not valid JSON: {exc}") from None
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))

    if not any(name.lower() == "user-agent" for name, _ in headers):
        from reliactl._version import __version__

        headers.append(("User-Agent", f"reliactl/{__version__}"))

    app_ctx = app_context(ctx)
    config = app_ctx.loaded().config
    store = app_ctx.store() if (breaker or rate or rate_key) else None
    limiter = _limiter(rate, rate_key, host_key(url), config, store) if (rate or rate_key) else None
    if token_wait is None:
        token_wait = config.rate_limit.max_wait

    from reliactl.http import ResilientClient, RetryEvent, import_httpx

    import_httpx(defer_unused=True)  # this process's own: what a request never runs, on use

    def on_retry(event: RetryEvent) -> None:
        after = "Retry-After" if event.retry_after else "backoff"
        info(
            f"{event.method} {event.url}: {event.reason};"
            f" retry {event.attempt} in {event.delay:.2f}s ({after})"
        )

    hooks: dict[str, list[Any]] = {}
    if verbose:

        def show_request(request: Any) -> None:
            shown = urlsplit(redact_url(str(request.url)))  # the host tells a webhook's form
            target = (shown.path or "/") + (f"?{shown.query}" if shown.query else "")
            lines = [f"> {request.method} {target} HTTP/1.1"]
            lines += [f"> {k}: {v}" for k, v in redact_headers(_raw(request.headers))]
            sys.stderr.write("\n".join(map(printable, lines)) + "\n>\n")
            sys.stderr.flush()

        def show_response(response: Any) -> None:
            reason = response.extensions.get("reason_phrase")  # httpx's drops non-ASCII
            phrase = _wire_text(reason) if isinstance(reason, bytes) else response.reason_phrase
            lines = [f"< {response.http_version} {response.status_code} {phrase}"]
            lines += [f"< {k}: {v}" for k, v in redact_headers(_raw(response.headers))]
            # a server's reason phrase and headers are foreign: escaped, one line each
            sys.stderr.write("\n".join(map(printable, lines)) + "\n<\n")
            sys.stderr.flush()

        hooks = {"request": [show_request], "response": [show_response]}

    with (
        ResilientClient(
            "",
            breaker=breaker,
            retry=retries,
            rate_limit=limiter,
            rate_limit_wait=token_wait,
            timeout=attempt_timeout,
            store=store,
            config=config,
            on_retry=on_retry,
            event_hooks=hooks,
        ) as client,
        client.stream(method, url, headers=headers, content=body) as response,
    ):
        status = response.status_code
        if fail and status >= 400:
            error(f"{method} {redact_url(url)}: HTTP {status} {response.reason_phrase}".rstrip())
            raise SystemExit(ExitCode.HTTP_ERROR)
        _copy_body(response, method, url)


def _copy_body(response: Any, method: str, url: str) -> None:
    """Stream the answer's body to stdout as it comes (never held whole in memory). The URL
    is redacted only for a message: redact_url compiles its webhook patterns at its first
    call (~1 ms of every successful GET, issue 21 item 4)."""
    import httpx

    from reliactl.errors import HTTPError
    from reliactl.redact import redact_url

    sys.stdout.flush()
    out = getattr(sys.stdout, "buffer", None)
    written = 0
    try:
        for chunk in response.iter_bytes():
            if out is not None:
                out.write(chunk)
            else:  # pragma: no cover - a text-only stdout
                sys.stdout.write(chunk.decode("utf-8", "replace"))
            written += len(chunk)
    except httpx.HTTPError as exc:
        text = str(exc).strip() or type(exc).__name__
        shown_url = redact_url(url)
        raise HTTPError(
            f"{method} {shown_url}: HTTP {response.status_code}, then the body broke off after"
            f" {written} bytes: {text}",
            method=method,
            url=shown_url,
            attempts=1,
            sent=True,
        ) from None
    finally:
        (out or sys.stdout).flush()
