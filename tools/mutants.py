"""``make mutants``: mutation testing of the decisions that stop a bad synthetic table.

The gates, the privacy filters, the publisher and the integrity check decide whether real
rows could leak; a test suite that stays green when one of them is broken protects
nothing. mutmut (configured in ``pyproject.toml``, ``[tool.mutmut]``) copies the package
to ``mutants/``, changes one operator or constant at a time, and runs the fast unit tests
that reach the changed function. A mutant that no test kills *survived*: a decision the
tests do not pin down.

Only the decision functions below are run (not every function of the four files), so a
run fits on two cores: ``MUTANT_PATTERNS`` is the one list of what is tested. Usage::

    python tools/mutants.py [--jobs N] [PATTERN ...]   # default: MUTANT_PATTERNS

It prints the count per status, the time taken, and each survivor with its diff, and
exits 1 when a mutant survived (or timed out: a mutant that makes a gate loop forever is
not caught either).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).parent / "mutmut"

#: mutmut's names: ``<module>.x_<function>`` and ``<module>.xǁ<Class>ǁ<method>`` (the ``?``
#: matches the separator), each followed by ``__mutmut_<n>``.
MUTANT_PATTERNS = (
    # gates: one verdict per metric, the data-derived limits, the refusal
    "airflow_synth.core.assess.checks.x_verdict__mutmut_*",
    "airflow_synth.core.assess.checks.x_evaluate_gates__mutmut_*",
    "airflow_synth.core.assess.checks.x_pii_leak_verdict__mutmut_*",
    "airflow_synth.core.assess.checks.x_exact_match_limit__mutmut_*",
    "airflow_synth.core.assess.checks.x_near_copy_limit__mutmut_*",
    "airflow_synth.core.assess.checks.x_wilson_interval__mutmut_*",
    "airflow_synth.core.assess.checks.x_enforce_gates__mutmut_*",
    "airflow_synth.core.assess.checks.x__z__mutmut_*",
    "airflow_synth.core.assess.checks.x__inverse__mutmut_*",
    "airflow_synth.core.assess.checks.x__interval__mutmut_*",
    "airflow_synth.core.assess.checks.x__is_nan__mutmut_*",
    # privacy: which rows the filters flag, which rows count as near copies, the shares
    # the gates read (properties such as SyntheticAssessor.copies_are_evidence are not
    # mutated by mutmut: test_bad_synthesizers' coarse-table cases pin that rule)
    "airflow_synth.core.assess.privacy.x?PrivacyEvaluator?_flags__mutmut_*",
    "airflow_synth.core.assess.privacy.x?PrivacyEvaluator?_near__mutmut_*",
    "airflow_synth.core.assess.privacy.x?PrivacyEvaluator?_near_copies__mutmut_*",
    "airflow_synth.core.assess.privacy.x?PrivacyEvaluator?filter__mutmut_*",
    "airflow_synth.core.assess.privacy.x?PrivacyEvaluator?evaluate__mutmut_*",
    "airflow_synth.core.assess.privacy.x_normalise_share__mutmut_*",
    "airflow_synth.core.assess.privacy.x__dcr_shares__mutmut_*",
    "airflow_synth.core.assess.privacy.x__closer__mutmut_*",
    # publishing: manifest last, latest pointer, nothing half-visible
    "airflow_synth.core.publish.store.x_publish_dataset__mutmut_*",
    # multi-table: every foreign key must point at a parent
    "airflow_synth.core.assess.set_quality.x_check_integrity__mutmut_*",
)
NOT_CAUGHT = ("survived", "timeout", "suspicious", "no tests", "segfault")

#: Survivors reviewed as *equivalent*: the mutated line computes the same result for every
#: input the code can receive, so no test can kill them. Matched by the changed line (old,
#: new), not by mutant number, so an edit of that line brings the mutant back for review.
EQUIVALENT: tuple[tuple[str, str, str], ...] = (
    (
        'privacy.get("measured", True) is not False',
        'privacy.get("measured", None) is not False',
        "a missing key reads None, and None is not False, like True",
    ),
    (
        'privacy.get("measured", True) is not False',
        'privacy.get("measured", ) is not False',
        "get() without a default returns None: the same as above",
    ),
    (
        "[privacy_reason] * 3, strict=True)",
        "[privacy_reason] * 3, strict=None)",
        "zip of two 3-element sequences: strict never triggers",
    ),
    (
        "[privacy_reason] * 3, strict=True)",
        "[privacy_reason] * 3, )",
        "zip of two 3-element sequences: strict never triggers",
    ),
    (
        "[privacy_reason] * 3, strict=True)",
        "[privacy_reason] * 3, strict=False)",
        "zip of two 3-element sequences: strict never triggers",
    ),
    (
        "or float(baseline) <= 0:",
        "or float(baseline) < 0:",
        "a repeat rate of 0 gives margin 0 and a data limit of 0 <= the setting: same result",
    ),
    (
        'int(rows.get("train") or 0)',
        'int(rows.get("train") or 1)',
        "_inverse(0) == _inverse(1) == 1.0",
    ),
    (
        'int(rows.get("synthetic") or 0)',
        'int(rows.get("synthetic") or 1)',
        "_inverse(0) == _inverse(1) == 1.0",
    ),
    ("1.0 / n if n > 0 else 1.0", "1.0 / n if n > 1 else 1.0", "1 / 1 == 1.0"),
    (
        "if odds_train + odds_holdout else 0.5",
        "if (odds_train + odds_holdout) or True else 0.5",
        "the odds sum to > 0 for every share in [0, 1] and baseline in (0, 1): dead branch",
    ),
    (
        "if odds_train + odds_holdout else 0.5",
        "if odds_train - odds_holdout else 0.5",
        "equal odds (share == baseline) give 1 / (1 + 1) = 0.5 either way",
    ),
    (
        "if odds_train + odds_holdout else 0.5",
        "if odds_train + odds_holdout else 1.5",
        "dead branch (see above)",
    ),
)
#: a quoted string literal (to tell a mutant that only rewords a message from one that
#: changes what is decided)
_STRING = re.compile(r"""(?:[rbuf]{0,2})(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def run(patterns: list[str], jobs: int) -> float:
    """A fresh mutmut run of ``patterns``; returns the seconds it took."""
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # no stale cache between edits
    started = time.monotonic()
    done = subprocess.run([str(MUTMUT), "run", "--max-children", str(jobs), *patterns], cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(
            f"mutmut run failed (exit {done.returncode}): the selected tests must pass on "
            "the unmutated code first (see its output above)."
        )
    return time.monotonic() - started


def statuses(patterns: list[str]) -> dict[str, str]:
    """mutant name -> status, for the mutants matching ``patterns``."""
    from mutmut.stats import status_by_exit_code

    found: dict[str, str] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                found[name] = status_by_exit_code[code]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel mutants (default 2)")
    parser.add_argument("patterns", nargs="*", help="mutant name patterns (default: all)")
    args = parser.parse_args()
    patterns = args.patterns or list(MUTANT_PATTERNS)
    seconds = run(patterns, args.jobs)
    found = statuses(patterns)
    counts = Counter(found.values())
    print(f"\nmutants: {len(found)} in {seconds:.0f} s on {args.jobs} workers")
    for status, count in counts.most_common():
        print(f"  {status}: {count}")
    missed = sorted(name for name, status in found.items() if status in NOT_CAUGHT)
    wording, equivalent, decisions = [], [], 0
    for name in missed:
        diff = subprocess.run(
            [str(MUTMUT), "show", name], cwd=ROOT, capture_output=True, text=True
        ).stdout
        if message_only(diff):
            wording.append(name)
        elif why := equivalent_because(diff):
            equivalent.append(f"{name}: {why}")
        else:
            decisions += 1
            print(f"\n{found[name].upper()}: {diff.strip()}")
    if wording:
        print(f"\n{len(wording)} mutant(s) only reword a message (not a decision):")
        print("  " + "\n  ".join(wording))
    if equivalent:
        print(f"\n{len(equivalent)} equivalent mutant(s) (reviewed, see EQUIVALENT):")
        print("  " + "\n  ".join(equivalent))
    if decisions:
        print(f"\n{decisions} decision mutant(s) not caught: a test should fail for each.")
        return 1
    return 0


def _changed_lines(diff: str) -> tuple[list[str], list[str]]:
    lines = diff.splitlines()
    removed = [line[1:] for line in lines if line.startswith("-") and line[1:2] != "-"]
    added = [line[1:] for line in lines if line.startswith("+") and line[1:2] != "+"]
    return removed, added


def equivalent_because(diff: str) -> str | None:
    """The reviewed reason when the mutant's one changed line is listed in EQUIVALENT."""
    removed, added = _changed_lines(diff)
    if len(removed) != 1 or len(added) != 1:
        return None
    for old, new, why in EQUIVALENT:
        if old in removed[0] and new in added[0]:
            return why
    return None


def message_only(diff: str) -> bool:
    """True when a mutant only rewords message text: a string literal with a space in it.

    Literals without a space (``"min"``, ``"dcr_share"``) are names the code compares or
    looks up, so changing them changes a decision and is not excused.
    """
    removed, added = _changed_lines(diff)
    if not removed or len(removed) != len(added):
        return False
    for old, new in zip(removed, added, strict=True):
        if _STRING.sub("''", old) != _STRING.sub("''", new):
            return False  # something besides string literals changed
        changed = set(_STRING.findall(old)) - set(_STRING.findall(new))
        if not changed or not all(" " in literal for literal in changed):
            return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
