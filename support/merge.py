"""Several live runs' reports joined into one: the shards of a portfolio run (``-D shard=i/n``),
run one after another or on several machines, merged as if one run had tested the portfolio.

``python -m support.merge OUT RUN_DIR [RUN_DIR ...]`` (``make report RESULTS="dir1 dir2"``) reads
each run's reports folder and writes into OUT:

* ``matrix.json`` and ``portfolio.md``: the portfolio matrix recomputed from the joined scenario
  outcomes (support/portfolio_matrix.py), the models of every run, the exclusions of discovery
  (not "in another shard"), the gated models: equal to the matrix of one unsharded run;
* ``verdict.json``: known, unexpected and harness failures and problems of every run (a problem
  names its run), every scenario's end once (``scenarios``), summed server starts and seconds,
  ``merged_from``;
* ``junit/``: one file per feature as an unsharded run writes them, every scenario once;
* ``allure-results/``: every run's results and attachments, ``environment.properties`` (values
  that differ between machines joined with `` | ``), categories, the merged matrix and metrics as
  the report's global attachments;
* ``metrics.json``: each model's figures from the run that tested it, every run's machine;
* ``evidence/``: every run's failure evidence.

A scenario that is not per model runs in shard 1 only (the others skip it, support/hooks.py):
a scenario found in several runs counts once, as the run where it ran; one that ran in two runs
means the runs are not shards of one run, and the merge refuses, as it does for a model tested
by two runs, a missing or repeated shard, and runs of different SUT versions. Exit code: 0 when
every failure of every run is a registered known issue, 1 when any is not (or a run had harness
failures or problems), 2 when the runs cannot be merged.
"""

from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import allure_results, portfolio_matrix, verdict as verdicts
from .errors import SuiteError

VERDICT, MATRIX_DATA, MATRIX, METRICS = "verdict.json", "matrix.json", "portfolio.md", "metrics.json"
ALLURE, JUNIT, EVIDENCE = "allure-results", "junit", "evidence"
RAN = {"passed", "failed", "broken"}  # statuses of a scenario that ran (matrix, JUnit and Allure words)
IN_ANOTHER_SHARD = "in another shard ("


@dataclass(frozen=True)
class Run:
    """One run's reports folder, read."""

    path: Path
    verdict: dict
    matrix: dict
    metrics: dict | None

    @property
    def shard(self) -> tuple[int, int] | None:
        text = self.verdict.get("shard")
        return tuple(int(x) for x in text.split("/")) if text else None  # type: ignore[return-value]


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_run(path: Path) -> Run:
    """A run's verdict, matrix and metrics; SuiteError when the run did not finish."""
    path = Path(path)
    verdict, matrix = verdicts.read(path), _json(path / MATRIX_DATA)
    if verdict is None or matrix is None:
        missing = VERDICT if verdict is None else MATRIX_DATA
        raise SuiteError(f"{path} has no {missing}: not the reports folder of a finished live run "
                         "(see its console log; a run writes them in its after_all hook)")
    return Run(path, verdict, matrix, _json(path / METRICS))


def check_runs(runs: Sequence[Run]) -> None:
    """SuiteError unless the runs can be merged: one SUT version, all shards of one split (each once)
    or none sharded, and no model tested by two runs."""
    if not runs:
        raise SuiteError("no run to merge: give one or more reports folders")
    versions = {(r.verdict.get("target") or "mlxk", r.verdict.get("sut_version")) for r in runs}
    if len(versions) > 1:
        raise SuiteError(f"the runs tested different SUTs {sorted(' '.join(map(str, v)) for v in versions)}: "
                         "merge runs of one target and version only")
    shards = [r.shard for r in runs]
    if any(shards) and not all(shards):
        raise SuiteError("some runs are shards (-D shard=i/n) and some are not: "
                         + ", ".join(f"{r.path}: {r.verdict.get('shard') or 'unsharded'}" for r in runs))
    if all(shards):
        splits = {n for _, n in shards}  # type: ignore[misc]
        if len(splits) > 1:
            raise SuiteError(f"the shards come from different splits: {sorted(r.verdict['shard'] for r in runs)}")
        n = splits.pop()
        got = sorted(i for i, _ in shards)  # type: ignore[misc]
        if got != list(range(1, n + 1)):
            missing = sorted(set(range(1, n + 1)) - set(got))
            twice = sorted({i for i in got if got.count(i) > 1})
            raise SuiteError(f"shards of {n}: " + "; ".join(
                ([f"missing {', '.join(f'{i}/{n}' for i in missing)}"] if missing else [])
                + ([f"given twice {', '.join(f'{i}/{n}' for i in twice)}"] if twice else []))
                + " (every shard's reports folder, each once)")
    owner: dict[str, Path] = {}
    for run in runs:
        for model in run.matrix["models"]:
            if model in owner:
                raise SuiteError(f"{model} was tested by two runs, {owner[model]} and {run.path}: "
                                 "merge the shards of one split (-D shard=i/n), not overlapping runs")
            owner[model] = run.path


def pick_once(items: Iterable[tuple[object, str, Path]], what: str) -> list[int]:
    """Indexes of ``(key, status, run)`` items to keep: each key once, as the run where it ran
    (else its first skipped copy); SuiteError when one key ran in two runs."""
    chosen: dict[object, int] = {}
    items = list(items)
    for index, (key, status, run) in enumerate(items):
        if key not in chosen:
            chosen[key] = index
            continue
        kept = items[chosen[key]]
        if status in RAN and kept[1] in RAN:
            raise SuiteError(f"{what} {key!r} ran in {kept[2]} and in {run}: "
                             "the runs overlap (not shards of one run)")
        if status in RAN:
            chosen[key] = index
    return sorted(chosen.values())


# --- the matrix -------------------------------------------------------------------------------

def merge_matrices(runs: Sequence[Run]) -> dict:
    """One matrix document from several runs' (support/portfolio_matrix.py Matrix.document)."""
    docs = [r.matrix for r in runs]
    outcomes = [(o, r.path) for r in runs for o in r.matrix["outcomes"]]
    keep = pick_once((((o["feature"], o["scenario"]), o["status"], path) for o, path in outcomes), "scenario")
    models = sorted({m for d in docs for m in d["models"]})  # a run lists its models sorted by id
    excluded = sorted({tuple(e) for d in docs for e in d["excluded"]
                       if e[0] not in models and not e[1].startswith(IN_ANOTHER_SHARD)})
    titles = sorted({d["title"] for d in docs})
    return {"title": " | ".join(titles), "models": models, "excluded": [list(e) for e in excluded],
            "gated": dict(sorted({m: why for d in docs for m, why in d["gated"].items()}.items())),
            "outcomes": [outcomes[i][0] for i in keep]}


# --- the verdict ------------------------------------------------------------------------------

def merge_scenarios(runs: Sequence[Run]) -> list[dict]:
    """Every scenario's end (the verdict's ``scenarios``) once, as the run where it ran; a name met
    again within one run is that name's next scenario (its n-th in every run)."""
    items: list[tuple[tuple[str, int], str, Path, dict]] = []
    for run in runs:
        met: Counter[str] = Counter()
        for item in run.verdict.get("scenarios", []):
            met[item["scenario"]] += 1
            items.append(((item["scenario"], met[item["scenario"]]), item["status"], run.path, item))
    keep = pick_once(((key, status, path) for key, status, path, _ in items), "scenario")
    return [items[i][3] for i in keep]


def merge_verdicts(runs: Sequence[Run]) -> dict:
    """One verdict from several: failures and problems of all, sums of the counts and seconds."""
    vs = [r.verdict for r in runs]
    seen = {k["issue"] for v in vs for k in v["known_failures"]}
    seconds: dict[str, float] = {}
    for v in vs:
        for key, value in v.get("seconds", {}).items():
            seconds[key] = round(seconds.get(key, 0.0) + value, 3)
    portfolios = list(dict.fromkeys(str(v.get("portfolio")) for v in vs))
    return {
        "target": vs[0].get("target"),
        "sut_version": vs[0].get("sut_version"),
        "portfolio": " | ".join(portfolios),
        "shard": None,
        "merged_from": [{"reports": str(r.path), "shard": r.verdict.get("shard")} for r in runs],
        "server_starts": sum(v.get("server_starts", 0) for v in vs),
        "server_evictions": sum(v.get("server_evictions", 0) for v in vs),
        "servers_died": [m for v in vs for m in v.get("servers_died", [])],
        "servers_hung": [m for v in vs for m in v.get("servers_hung", [])],
        "seconds": seconds,
        "known_failures": [k for v in vs for k in v["known_failures"]],
        "unexpected_failures": [f for v in vs for f in v["unexpected_failures"]],
        "harness_failures": [f for v in vs for f in v.get("harness_failures", [])],
        "harness_problems": [f"{r.path}: {p}" for r in runs for p in r.verdict["harness_problems"]],
        "registered_not_seen": sorted({i for v in vs for i in v.get("registered_not_seen", [])} - seen),
        "scenarios": merge_scenarios(runs),
    }


# --- metrics ----------------------------------------------------------------------------------

def merge_metrics(runs: Sequence[Run], models: Sequence[str]) -> dict | None:
    """Each model's record from the run that tested it, in ``models`` order; every run's machine."""
    docs = [(r, r.metrics) for r in runs if r.metrics is not None]
    if not docs:
        return None
    records = {rec["model"]: rec for _, d in docs for rec in d["models"]}
    machines = [{"reports": str(r.path), "shard": r.verdict.get("shard"), **d["machine"]} for r, d in docs]
    first = docs[0][1]
    same_machine = all(d["machine"] == first["machine"] for _, d in docs)
    return {"sut_version": first.get("sut_version"),
            "portfolio": " | ".join(dict.fromkeys(str(d.get("portfolio")) for _, d in docs)),
            "machine": first["machine"] if same_machine else None, "machines": machines,
            "units": first["units"], "meaning": first["meaning"],
            "models": [records[m] for m in dict.fromkeys([*models, *sorted(records)]) if m in records]}


# --- JUnit ------------------------------------------------------------------------------------

def junit_status(case: ET.Element) -> str:
    if case.find("failure") is not None or case.find("error") is not None:
        return "failed"
    if case.find("skipped") is not None:
        return "skipped"
    return case.get("status", "passed")


def merge_junit(runs: Sequence[Path], out: Path) -> list[Path]:
    """Each feature's JUnit file once, its test cases from every run (each scenario once)."""
    by_file: dict[str, list[tuple[Path, ET.Element]]] = {}
    for run in runs:
        for path in sorted((run / JUNIT).glob("*.xml")):
            by_file.setdefault(path.name, []).append((run, ET.parse(path).getroot()))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, suites in sorted(by_file.items()):
        cases = [(run, case) for run, suite in suites for case in suite.iter("testcase")]
        keep = pick_once((((c.get("classname"), c.get("name")), junit_status(c), run) for run, c in cases),
                         "JUnit test case")
        first = suites[0][1]
        merged = ET.Element(first.tag, dict(first.attrib))
        chosen = [cases[i][1] for i in keep]
        merged.extend(chosen)
        merged.set("tests", str(len(chosen)))
        merged.set("failures", str(sum(c.find("failure") is not None for c in chosen)))
        merged.set("errors", str(sum(c.find("error") is not None for c in chosen)))
        merged.set("skipped", str(sum(c.find("skipped") is not None for c in chosen)))
        merged.set("time", f"{sum(float(c.get('time') or 0) for c in chosen):g}")
        merged.set("timestamp", min(s.get("timestamp", "") for _, s in suites))
        merged.set("hostname", ", ".join(dict.fromkeys(s.get("hostname", "") for _, s in suites)))
        ET.ElementTree(merged).write(out / name, encoding="utf-8", xml_declaration=True)
        written.append(out / name)
    return written


# --- Allure -----------------------------------------------------------------------------------

def merged_environment(texts: Sequence[str], shards: Sequence[str | None]) -> dict[str, str]:
    """One environment.properties from several: equal values once, differing ones joined."""
    values: dict[str, list[str]] = {}
    for text in texts:
        for key, value in allure_results.properties_values(text).items():
            values.setdefault(key, [])
            if value not in values[key]:
                values[key].append(value)
    out = {key: " | ".join(vs) for key, vs in values.items()}
    if any(shards):
        out["shard"] = "merged: " + ", ".join(s for s in shards if s)
    return out


def merge_allure(runs: Sequence[Run], out: Path, table: str, metrics: dict | None) -> int:
    """Every run's Allure results in one folder (each scenario once); returns the results kept."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[tuple[Path, dict, Path]] = []
    for run in runs:
        folder = run.path / ALLURE
        for path in sorted(folder.glob("*")) if folder.is_dir() else ():
            if path.name.endswith("-result.json"):
                results.append((path, json.loads(path.read_text(encoding="utf-8")), run.path))
            elif not path.name.endswith("-globals.json") and path.name not in ("environment.properties",
                                                                               "categories.json"):
                shutil.copy2(path, out / path.name)  # attachments, named by uuid
    keep = pick_once(((r.get("historyId") or r.get("fullName"), r.get("status"), run) for _, r, run in results),
                     "Allure test")
    for i in keep:
        shutil.copy2(results[i][0], out / results[i][0].name)
    envs = [(r.path / ALLURE / "environment.properties") for r in runs]
    environment = merged_environment([p.read_text(encoding="utf-8") for p in envs if p.is_file()],
                                     [r.verdict.get("shard") for r in runs])
    allure_results.finalize(out, environment)
    allure_results.write_global_attachment(out, "portfolio matrix (portfolio.md)", table, "text")
    if metrics is not None:
        allure_results.write_global_attachment(out, "SUT speed per model (metrics.json)",
                                               json.dumps(metrics, indent=2), "json")
    return len(keep)


# --- the whole ---------------------------------------------------------------------------------

def prepare_out(out: Path, runs: Sequence[Path]) -> None:
    """Empty OUT for a merge: only a new folder or an earlier merge's, never a run's or its parent."""
    out = out.resolve()
    for run in runs:
        run = run.resolve()
        if out == run or out in run.parents:
            raise SuiteError(f"the merge output {out} holds the run {run}: write the merge elsewhere")
    if out.exists() and any(out.iterdir()):
        previous = verdicts.read(out)
        if previous is None or "merged_from" not in previous:
            raise SuiteError(f"{out} is not empty and holds no earlier merge: give a new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def merge(out: Path, paths: Sequence[Path], say: Callable[[str], None] = lambda line: None) -> dict:
    """Merge the runs' reports folders into ``out``; returns the merged verdict (SuiteError: cannot)."""
    paths = [Path(p) for p in paths]
    runs = [load_run(p) for p in paths]
    check_runs(runs)
    out = Path(out)
    prepare_out(out, paths)
    matrix = merge_matrices(runs)
    table = portfolio_matrix.render_document(matrix)
    verdict = merge_verdicts(runs)
    metrics = merge_metrics(runs, matrix["models"])
    junit = merge_junit(paths, out / JUNIT)
    kept = merge_allure(runs, out / ALLURE, table, metrics)
    for run in paths:
        if (run / EVIDENCE).is_dir():
            shutil.copytree(run / EVIDENCE, out / EVIDENCE, dirs_exist_ok=True)
    (out / MATRIX_DATA).write_text(json.dumps(matrix, indent=1) + "\n", encoding="utf-8")
    (out / MATRIX).write_text(table, encoding="utf-8")
    (out / VERDICT).write_text(json.dumps(verdict, indent=2) + "\n", encoding="utf-8")
    if metrics is not None:
        (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    counts = portfolio_matrix.Matrix.from_document(matrix).counts()
    say(f"merged {len(runs)} run(s) ({', '.join(r.verdict.get('shard') or str(r.path) for r in runs)}) into {out}: "
        f"{len(matrix['models'])} models, {len(matrix['outcomes'])} scenarios ("
        + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"); {len(junit)} JUnit file(s), {kept} Allure results")
    return verdict


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0].startswith("-"):
        print("usage: python -m support.merge OUT RUN_REPORTS_DIR [RUN_REPORTS_DIR ...]", file=sys.stderr)
        return 2
    say = lambda line: print(f"mlx-e2e: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        verdict = merge(Path(argv[0]), [Path(a) for a in argv[1:]], say)
    except SuiteError as e:
        say(f"cannot merge: {e}")
        return 2
    print((Path(argv[0]) / MATRIX).read_text(encoding="utf-8"), file=sys.stderr)
    return verdicts.judge(verdict, say)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
