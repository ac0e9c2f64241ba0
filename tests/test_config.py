from __future__ import annotations

import os
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from reliactl import config as cfgmod
from reliactl.config import get_reliability_config, load
from reliactl.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ=env or {}, **kw)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_no_file_at_all_gives_the_documented_defaults() -> None:
    cfg = load(environ={}).config
    assert cfg.circuit_breaker.failure_threshold == 5
    assert cfg.circuit_breaker.recovery_timeout == 60
    assert cfg.health_monitor.memory_threshold_mb == 500
    assert cfg.rate_limit.openai_requests_per_minute == 60
    assert (cfg.retry.max_retries, cfg.retry.strategy, cfg.retry.jitter) == (
        3,
        "exponential",
        "full",
    )


def test_precedence_default_then_file_then_env_then_flag(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "retry:\n  max_retries: 4\n  base_delay: 2s\n  max_delay: 1m\n")
    assert load(environ={}).config.retry.max_retries == 3
    assert load(f, environ={}).config.retry.max_retries == 4
    env = {"RELIACTL_RETRY__MAX_RETRIES": "6"}
    loaded = load(f, environ=env)
    assert loaded.config.retry.max_retries == 6
    assert loaded.sources["retry.max_retries"] == "env RELIACTL_RETRY__MAX_RETRIES"
    assert loaded.sources["retry.base_delay"] == f"{f}:3"
    flagged = load(f, environ=env, flags={"retry.max_retries": (9, "--retries")})
    assert flagged.config.retry.max_retries == 9
    assert flagged.sources["retry.max_retries"] == "flag --retries"
    assert flagged.sources["retry.multiplier"] == "default"


def test_discovery_order(tmp_path: Path, isolated_env: Path) -> None:
    xdg = Path(os.environ["XDG_CONFIG_HOME"]) / "reliactl"
    xdg.mkdir(parents=True)
    write(xdg / "config.yaml", "retry:\n  max_retries: 1\n")
    env = dict(os.environ)
    assert load(environ=env).config.retry.max_retries == 1
    write(isolated_env / "reliactl.yaml", "retry:\n  max_retries: 2\n")
    assert load(environ=env).config.retry.max_retries == 2
    named = write(tmp_path / "named.yaml", "retry:\n  max_retries: 7\n")
    assert load(environ={**env, "RELIACTL_CONFIG": str(named)}).config.retry.max_retries == 7
    explicit = write(tmp_path / "explicit.yaml", "retry:\n  max_retries: 8\n")
    env["RELIACTL_CONFIG"] = str(named)
    assert load(explicit, environ=env).config.retry.max_retries == 8


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    (msg,) = problems_of(tmp_path / "nope.yaml")
    assert "not found" in msg


def test_seed_environment_names_keep_working() -> None:
    env = {
        "CB_FAILURE_THRESHOLD": "7",
        "CB_RECOVERY_TIMEOUT": "2m",
        "HEALTH_CHECK_INTERVAL": "30",
        "HEALTH_MEMORY_THRESHOLD_MB": "256",
        "RATE_LIMIT_OPENAI_RPM": "20",
    }
    cfg = load(environ=env).config
    assert cfg.circuit_breaker.failure_threshold == 7
    assert cfg.circuit_breaker.recovery_timeout == 120
    assert cfg.health_monitor.check_interval == 30
    assert cfg.health_monitor.memory_threshold_mb == 256
    assert cfg.rate_limit.openai_requests_per_minute == 20


def test_every_scalar_has_an_env_form() -> None:
    env = {
        "RELIACTL_HEALTH_MONITOR__DISK_WARN": "70",
        "RELIACTL_RUN__KILL_AFTER": "3s",
        "RELIACTL_STATE__PATH": "/tmp/x/state.db",
        "RELIACTL_CIRCUIT_BREAKER__BREAKERS__OPENAI__FAILURE_THRESHOLD": "2",
        "RELIACTL_RATE_LIMIT__LIMITS__API": "10/second",
    }
    cfg = load(environ=env).config
    assert cfg.health_monitor.disk_warn == 70
    assert cfg.run.kill_after == 3
    assert cfg.state.path == "/tmp/x/state.db"
    assert cfg.circuit_breaker.settings_for("openai").failure_threshold == 2
    assert cfg.circuit_breaker.settings_for("other").failure_threshold == 5
    assert cfg.rate_limit.limits == {"api": "10/second"}


def test_env_problems_name_the_variable() -> None:
    msgs = problems_of(
        None,
        env={"CB_FAILURE_THRESHOLD": "lots", "RELIACTL_RETRY__MAX_RETRIS": "3"},
    )
    assert any("CB_FAILURE_THRESHOLD" in m and "'lots'" in m for m in msgs)
    assert any(
        "RELIACTL_RETRY__MAX_RETRIS" in m and "did you mean 'max_retries'" in m for m in msgs
    )


def test_the_issue_example_message(tmp_path: Path) -> None:
    f = write(
        tmp_path / "reliactl.yaml", "\n" * 11 + "health_monitor:\n  memory_threshold_mb: lots\n"
    )
    (msg,) = problems_of(f)
    assert msg == (
        f"{f}:13: health_monitor.memory_threshold_mb: expected a positive number, got 'lots'"
    )


def test_all_problems_are_reported_at_once_with_lines(tmp_path: Path) -> None:
    f = write(
        tmp_path / "c.yaml",
        "retry:\n"
        "  max_retries: -1\n"  # 2
        "  base_delay: 10s\n"
        "  max_delay: 1s\n"  # 4
        "  strategy: exponentail\n"  # 5
        "circuit_breaker:\n"
        "  failure_threshold: 0\n"  # 7
        "  recovery_timout: 5\n"  # 8
        "health_monitor:\n"
        "  check_interval: -5s\n"  # 10
        "  cpu_warn: true\n",  # 11
    )
    msgs = problems_of(f)
    text = "\n".join(msgs)
    assert f"{f}:2: retry.max_retries: expected at least 0, got -1" in text
    assert f"{f}:5: retry.strategy: expected one of exponential, linear, fixed" in text
    assert "did you mean 'exponential'" in text
    assert f"{f}:7: circuit_breaker.failure_threshold: expected a positive value, got 0" in text
    assert (
        f"{f}:8: circuit_breaker.recovery_timout: unknown key (did you mean 'recovery_timeout'?)"
        in text
    )
    assert f"{f}:10: health_monitor.check_interval:" in text
    assert f"{f}:11: health_monitor.cpu_warn: expected a positive number, got true" in text
    assert len(msgs) == 6  # max_delay < base_delay is checked once the types are right


def test_max_delay_below_base_delay_is_an_error(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "retry:\n  base_delay: 10s\n  max_delay: 1s\n")
    (msg,) = problems_of(f)
    assert msg.startswith(f"{f}:3: retry.max_delay: must not be less than retry.base_delay")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "retry:\n  max_retries: 1\n  max_retries: 2\n")
    (msg,) = problems_of(f)
    assert msg == f"{f}:3: retry.max_retries: duplicate key (first set on line 2)"


def test_wrong_types_and_sections(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "retry: 5\nrun:\n  lock_dir: [a]\nbogus: 1\n")
    msgs = problems_of(f)
    assert f"{f}:1: retry: expected a mapping, got 5" in msgs
    assert f"{f}:3: run.lock_dir: expected a string, got a list" in msgs
    assert any(m.startswith(f"{f}:4: bogus: unknown key") for m in msgs)


def test_invalid_yaml_syntax_is_one_clean_problem(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "retry:\n  max_retries: [1,\n")
    (msg,) = problems_of(f)
    assert msg.startswith(f"{f}:") and "invalid YAML" in msg


def test_python_tags_are_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    f = write(
        tmp_path / "c.yaml",
        "retry:\n"
        f"  strategy: !!python/object/apply:os.system ['touch {marker}']\n"
        f"run: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    msgs = problems_of(f)
    assert not marker.exists()
    assert any(
        f"{f}:2: retry.strategy: unsupported YAML tag !!python/object/apply:os.system" in m
        for m in msgs
    )
    assert any(m.startswith(f"{f}:3: run: unsupported YAML tag") for m in msgs)


def test_alias_bomb_is_rejected_quickly_without_memory(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    f = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    tracemalloc.start()
    started = time.monotonic()
    msgs = problems_of(f)
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert any("alias bomb" in m for m in msgs)
    assert elapsed < 5  # generous: the point is "not minutes"; measured ~10 ms
    assert peak < 50 * 1024 * 1024


def test_a_big_config_written_out_in_full_is_not_an_alias_bomb(tmp_path: Path) -> None:
    """3,000 health checks (21,000 YAML values, no alias) load: the bomb guard counts what
    aliases add, not the values written out (issue 21: 5,000 checks were refused as "an
    alias bomb"); aliases adding more than MAX_NODES are still refused on top of it."""
    checks = "".join(
        f"    - {{name: web{i}, kind: http, url: 'http://127.0.0.1:1/?{i}'}}\n" for i in range(3000)
    )
    f = write(tmp_path / "big.yaml", f"health_monitor:\n  system_checks: []\n  checks:\n{checks}")
    assert len(load(f, environ={}).config.health_monitor.checks) == 3000
    bomb = ["a0: &a0 [" + ",".join(["x"] * 150) + "]"]
    bomb += [f"b{i}: *a0" for i in range(140)]  # 140 aliases x 151 values > 20,000 added
    msgs = problems_of(write(tmp_path / "b.yaml", "\n".join(bomb) + "\n"))
    assert any("alias bomb" in m for m in msgs), msgs


@pytest.mark.parametrize(
    "extra",
    [
        "",
        "base: &b {x: 1, y: [a, 2.5, null, 2024-01-02]}\nother:\n  <<: *b\n  y: 3\n",
        "dup: 1\ndup: 2\n",
        "bad: !!python/object/apply:os.system [true]\n",
        "ok: 1\n  broken: [\n",
    ],
)
def test_libyaml_and_the_pure_python_reader_agree(
    monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    """The libyaml fast path (a big config: 5,000 checks, issue 21) reads the same data, the
    same key lines and the same problems as the pure-Python reader the messages were written
    for: the reference config plus merge keys, a duplicate key, a refused tag, broken YAML."""
    from reliactl import _yaml

    text = (Path(__file__).parent.parent / "config.example.yaml").read_text() + extra
    fast = _yaml.parse(text)
    assert (_yaml._c_loader(text) is not None) == ("[\n" not in extra)  # broken: pure Python
    monkeypatch.setattr(_yaml, "_c_loader", lambda text: None)
    slow = _yaml.parse(text)
    assert (fast.data, fast.lines, fast.problems) == (slow.data, slow.lines, slow.problems)
    assert bool(fast.problems) == any(bad in extra for bad in ("dup", "!!", "[\n"))


def test_recursive_alias_is_rejected(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "a: &a [*a]\n")
    msgs = problems_of(f)
    assert msgs


def test_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    f = write(
        tmp_path / "c.yaml",
        "circuit_breaker:\n"
        "  breakers:\n"
        "    base: &base {failure_threshold: 2, recovery_timeout: 30s}\n"
        "    api:\n"
        "      <<: *base\n"
        "      failure_threshold: 4\n",
    )
    cb = load(f, environ={}).config.circuit_breaker
    assert cb.settings_for("api").failure_threshold == 4
    assert cb.settings_for("api").recovery_timeout == 30


def test_fifo_or_directory_as_config_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    (msg,) = problems_of(fifo)
    assert "not a regular file" in msg
    (msg,) = problems_of(tmp_path)
    assert "directory" in msg


def test_bad_rate_syntax(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "rate_limit:\n  limits:\n    api: 60/fortnight\n")
    (msg,) = problems_of(f)
    assert msg.startswith(f"{f}:3: rate_limit.limits.api: expected a rate")


def test_parse_rates() -> None:
    assert cfgmod.parse_rates("60/minute;1000/hour") == [(60, 60.0), (1000, 3600.0)]
    assert cfgmod.parse_rates("5/10s") == [(5, 10.0)]
    with pytest.raises(ValueError):
        cfgmod.parse_rates("0/minute")


def test_get_reliability_config_is_the_seed_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from reliactl import get_reliability_config as exported

    assert exported is get_reliability_config
    monkeypatch.setenv("RATE_LIMIT_OPENAI_RPM", "33")
    cfg = get_reliability_config(reload=True)
    assert cfg.rate_limit.openai_requests_per_minute == 33
    assert cfg.circuit_breaker.failure_threshold == 5


def test_config_is_frozen() -> None:
    import dataclasses

    cfg = load(environ={}).config
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.retry.max_retries = 1  # type: ignore[misc]


def test_example_config_validates_and_sets_every_option() -> None:
    example = REPO / "config.example.yaml"
    loaded = load(example, environ={})
    # An option inside a list of items (health checks, alert sinks) is shown once it is set in
    # any item of the example: "checks[].url" is documented by the http check alone.
    set_somewhere: set[str] = set()
    defaulted: set[str] = set()
    for path, source in loaded.sources.items():
        option = re.sub(r"\[\d+\]", "[]", path)
        option = re.sub(r"^jobs\.[^.]+", "jobs.*", option)  # any job of the example
        (defaulted if source == "default" else set_somewhere).add(option)
    missing = [
        option
        for option in sorted(defaulted - set_somewhere)
        if not any(other.startswith(option + ".") for other in set_somewhere)
    ]
    assert missing == []


def test_example_config_is_what_config_init_writes() -> None:
    assert (REPO / "config.example.yaml").read_text(encoding="utf-8") == cfgmod.example_yaml()


def test_secrets_are_redacted_in_plain_views() -> None:
    plain = cfgmod.to_plain({"webhook_url": "https://hooks/secret", "api_key": "sk-1", "name": "x"})
    assert plain == {"webhook_url": "***", "api_key": "***", "name": "x"}


def test_sources_are_worked_out_only_when_asked_and_stay_right_for_a_big_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading 2,000 checks does not build the per-setting sources (only `config show` reads
    them; eagerly they were half of a 5,000-check load, issue 21), and once asked they are
    the same as before: the file line of a key deep in the list, env and defaults."""
    from reliactl.config import _validation

    checks = "".join(
        f"    - {{name: web{i}, kind: http, url: 'http://127.0.0.1:1/?{i}'}}\n" for i in range(2000)
    )
    f = write(tmp_path / "big.yaml", f"health_monitor:\n  system_checks: []\n  checks:\n{checks}")
    calls = []
    real = _validation._Origins.source_of

    def counting(self: _validation._Origins, path: tuple[str | int, ...]) -> str:
        calls.append(path)
        return real(self, path)

    monkeypatch.setattr(_validation._Origins, "source_of", counting)
    loaded = load(f, environ={"RELIACTL_RETRY__MAX_RETRIES": "6"})
    assert calls == []
    assert len(loaded.config.health_monitor.checks) == 2000
    assert loaded.sources["health_monitor.checks[1999].url"] == f"{f}:2003"
    assert loaded.sources["health_monitor.checks[0].name"] == f"{f}:4"
    assert loaded.sources["health_monitor.checks[7].method"] == "default"
    assert loaded.sources["retry.max_retries"] == "env RELIACTL_RETRY__MAX_RETRIES"
    assert loaded.sources is loaded.sources  # worked out once
    assert calls


def test_the_same_problems_from_the_per_class_plan_for_every_entry(tmp_path: Path) -> None:
    """The per-class field plan (read once for 5,000 checks) still reports, per entry, an
    unknown key with its suggestion, a missing required key and a bad value, each at its own
    line: the plan is shared, the problems are not."""
    f = write(
        tmp_path / "c.yaml",
        "health_monitor:\n"
        "  checks:\n"
        "    - {name: a, kind: http, urll: 'http://x/'}\n"
        "    - {kind: tcp, host: h, port: 1}\n"
        "    - {name: c, kind: tcp, host: h, port: 0}\n"
        "    - {name: d, kind: http, url: 'http://x/', timeout: 5s}\n",
    )
    msgs = problems_of(f)
    assert f"{f}:3: health_monitor.checks[0].urll: unknown key (did you mean 'url'?)" in msgs
    assert any(m.startswith(f"{f}:4: health_monitor.checks[1].name: is required") for m in msgs)
    assert any(
        m.startswith(f"{f}:5: health_monitor.checks[2].port: expected a positive") for m in msgs
    )
    assert len(msgs) == 3, msgs


def test_the_alias_guard_walks_only_documents_that_can_hold_an_alias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A document without a "*" holds no alias, so nothing in it can expand and the two
    guard walks over every node are skipped (a third of a 5,000-check parse, issue 21); a
    document with one is still walked, and a bomb or a self-reference still refused."""
    from reliactl import _yaml

    walks = []
    real = _yaml._written_nodes

    def counting(root: object) -> int:
        walks.append(root)
        return real(root)  # type: ignore[arg-type]

    monkeypatch.setattr(_yaml, "_written_nodes", counting)
    checks = "".join(f"  - {{name: web{i}, url: 'http://h/?{i}'}}\n" for i in range(500))
    doc = _yaml.parse("checks:\n" + checks)
    assert not doc.problems and len(doc.data["checks"]) == 500
    assert walks == []
    assert not _yaml.parse("a: &x 1\nb: *x\n").problems and len(walks) == 1
    assert "refers to itself" in _yaml.parse("a: &a [*a]\n").problems[0][2]
    bomb = ["a0: &a0 [" + ",".join(["x"] * 150) + "]"] + [f"b{i}: *a0" for i in range(140)]
    assert "alias bomb" in _yaml.parse("\n".join(bomb) + "\n").problems[0][2]
