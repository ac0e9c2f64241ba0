"""What strict JSON costs a big document holding one emoji (`runs --json`, serve's API).

Prints figures; asserts nothing. ``output.strict_json`` writes every JSON document and
re-encodes one that holds a lone surrogate (a byte that was not UTF-8). Its first version
took any ``\\ud`` escape for one, and an emoji is a pair of such escapes
(``\\ud83d\\ude00``): one emoji in a 20 000-run document made it ~5x as slow. Rows: the
plain ``dumps_indented`` (baseline), ``strict_json`` of this tree on the document with one
emoji and with none, and (with ``--ref``, default the commit before the fix) the same at
that ref, interleaved round by round after the machine's load.

    python benchmarks/json_strict.py [--runs N] [--records N] [--ref GIT-REF]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import interleave_once, module_at_ref, print_header, print_spread_table, sized

from reliactl.cli import output

BASE = "dumps_indented only"
REF = "4dd27d4"  # the output branch before the lone-surrogate scan


def document(records: int, emoji: bool) -> dict[str, Any]:
    """A `runs --json`-shaped document of ``records`` runs; with ``emoji`` one holds 😀."""
    runs = [
        {
            "id": index,
            "name": f"job-{index % 50}",
            "command": f"/usr/local/bin/backup --target /srv/data/{index} --verbose",
            "started_at": "2026-12-01T06:00:00Z",
            "started_at_epoch": 1796104800.0 + index,
            "duration": 1.25,
            "exit_code": 0,
            "outcome": "success",
            "host": "vm",
        }
        for index in range(records)
    ]
    if emoji:
        runs[records // 2]["command"] = "echo done 😀"
    return {"version": 2, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=sized(7, 2), help="interleaved rounds")
    parser.add_argument("--records", type=int, default=sized(20_000, 200))
    parser.add_argument("--ref", default=REF, help="git ref to compare with ('' for none)")
    args = parser.parse_args()
    print_header(f"strict_json of a {args.records}-run document, {args.runs} interleaved rounds")
    with_emoji, without = document(args.records, True), document(args.records, False)
    dumps = output.dumps_indented
    candidates = {
        BASE: lambda: dumps(with_emoji),
        "strict_json, one emoji": lambda: output.strict_json(with_emoji, dumps),
        "strict_json, no emoji": lambda: output.strict_json(without, dumps),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.ref:
            try:
                old = module_at_ref(args.ref, "reliactl/cli/output.py", "output_ref", tmp)
            except Exception as exc:  # an unknown ref: measure this tree only
                print(f"ref {args.ref} not measured: {exc}")
            else:
                candidates[f"strict_json at {args.ref}, one emoji"] = lambda: old.strict_json(
                    with_emoji, dumps
                )
        samples = interleave_once(candidates, rounds=args.runs)
    print_spread_table(samples, BASE, unit="ms", label="writer")


if __name__ == "__main__":
    main()
