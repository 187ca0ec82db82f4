"""One live run: settings, the portfolio it covers, the servers it starts, what it leaves behind."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import (cache_manifest, cache_scan, config, demo_portfolio, discovery, known_issues, listing_checks,
               outlines, ram_budget)
from .errors import SuiteError
from .model_facts import EmbeddingFacts, ModelFacts, embedding_facts_for, facts_for
from .paths import REGISTRY, REPORTS
from .targets import MlxKnife, MlxLm, MlxOpenAIServer, make_target


@dataclass
class Session:
    settings: config.Settings
    sut_version: str
    hf_home: Path
    manifest: dict | None  # the demo portfolio's manifest; None on a user's cache
    budget: ram_budget.Budget
    portfolio: discovery.Portfolio
    registry: known_issues.Registry
    cache_before: cache_manifest.Manifest
    sizes: dict[str, int]
    target: MlxKnife | MlxLm | MlxOpenAIServer  # how the system under test is started and addressed (support/targets.py)
    pool: object | None = None
    timings: Counter = field(default_factory=Counter)  # seconds spent by kind: request, cli, reference
    cli_hung: dict[str, str] = field(default_factory=dict)  # model -> the `mlxk run` that hung (asked no more)
    _facts: dict[str, ModelFacts] = field(default_factory=dict)

    @property
    def portfolio_name(self) -> str:
        return "demo" if self.manifest is not None else "user"

    def facts(self, model_id: str) -> ModelFacts:
        if model_id not in self._facts:
            self._facts[model_id] = facts_for(model_id, self.hf_home, self.manifest)
        return self._facts[model_id]

    def embedding_facts(self, model_id: str) -> EmbeddingFacts | None:
        """The demo manifest's facts of an embedding model (None on a user's cache)."""
        return embedding_facts_for(model_id, self.manifest)

    def gated_reason(self, model_id: str) -> str | None:
        return self.portfolio.gated.get(model_id)

    def server(self, model_id: str, kind: str = "serve"):
        """A running server of ``kind`` for the model, from the pool (started on first use); kinds
        other than "serve" are the target's (support/targets.py: embed-serve, the embeddings proxy)."""
        if self.pool is None:
            self.pool = self._make_pool()
        return self.pool.acquire(model_id, kind)

    def make_room_for_process(self, model_id: str) -> None:
        """Before a CLI or reference-decoder process loads ``model_id``: evict resident servers,
        least recently used first, until that process fits the RAM budget beside them."""
        if self.pool is None:
            self.pool = self._make_pool()
        self.pool.make_room(self.pool.process_cost(model_id))

    def _make_pool(self):
        from .server_pool import ServerPool

        def factory(model_id: str):
            return self.target.server(model_id, REPORTS / "servers", self.settings.startup_timeout)

        def kind_factory(kind: str, model_id: str):
            return self.target.kind_server(kind, model_id, REPORTS / "servers", self.settings.startup_timeout)

        def need(model_id: str) -> float:
            return ram_budget.need_gb(self.sizes.get(model_id, 0)) * 1024**3

        return ServerPool(factory, self.budget.budget_gb * 1024**3, need, reuse=self.settings.server_reuse,
                          kind_factory=kind_factory)

    def close(self) -> list[str]:
        """End every server and check the cache; returns the problems found (one line each)."""
        problems = []
        if self.pool is not None:
            try:
                self.pool.stop_all()
            except SuiteError as e:
                problems.append(str(e))
        hub = self.hf_home / "hub"
        after = cache_manifest.take(hub) if hub.is_dir() else {}
        changes = cache_manifest.compare(self.cache_before, after, root=hub)
        if changes:
            problems.append(changes.describe())
        return problems


def list_entries(target, hf_home: Path, timeout: float) -> list[dict]:
    """The cached models as listing entries: mlx-knife's own `mlxk list --json`; for a target
    without a listing command, the cache scanned with huggingface_hub (support/cache_scan.py)."""
    if isinstance(target, MlxKnife):
        return discovery.run_mlxk_list(target.command, hf_home, timeout=timeout)
    return cache_scan.scan_entries(hf_home, target.model_types())


def start(userdata, features, log: Callable[[str], None]) -> Session:
    """Validate settings, find the portfolio (the target's listing), fill the outlines."""
    settings = config.load_settings(userdata, os.environ)
    target = make_target(settings, Path("."))  # checks that the SUT runs, before any build
    version = target.version
    if settings.hf_home is None:
        manifest = demo_portfolio.ensure_built(demo_portfolio.DEFAULT_ROOT, log=log)
        hf_home = demo_portfolio.DEFAULT_ROOT
    else:
        hf_home = settings.hf_home
        manifest = demo_portfolio.load_manifest(hf_home)
    if settings.ram_budget_gb is None and manifest is not None:
        budget = ram_budget.system_budget(override_gb=manifest["ram_budget_gb"],
                                          source_override="the demo portfolio manifest")
    else:
        budget = ram_budget.system_budget(override_gb=settings.ram_budget_gb)
    target = replace(target, hf_home=hf_home)
    log(f"SUT: {target.title} {' '.join(target.command)} ({version}); portfolio: {hf_home}; "
        f"RAM budget {budget.describe()}")
    log(f"discovery: {target.discovery}; server startup measured from {target.startup_measures}")
    entries = list_entries(target, hf_home, settings.cli_timeout)
    if manifest is None and isinstance(target, MlxKnife):  # the demo's listing is checked by a scenario
        left_out = listing_checks.unlisted(hf_home / "hub", entries)
        if left_out:
            log(f"warning: {len(left_out)} model(s) in the cache are missing from `mlxk list --json` "
                f"(never tested): {', '.join(left_out)}")
    portfolio = discovery.classify(entries, budget, settings.include, settings.exclude,
                                   settings.max_models, settings.shard)
    for line in discovery.format_exclusions(portfolio):
        log(line)
    added = outlines.fill_portfolio_outlines(features, portfolio.rows())
    log("portfolio rows: " + ", ".join(f"{n} {kind}" for kind, n in sorted(added.items())))
    for kind, ids in portfolio.rows().items():
        if not ids and kind not in outlines.REQUIRED_KINDS:
            log(f"no {kind} model in the portfolio: its outlines have no rows (nothing of it is tested)")
    empty = outlines.rows_missing(features)
    whole = portfolio.whole.rows() if portfolio.whole is not None else None
    if empty and whole is not None and all(whole.get(kind) for kind in outlines.REQUIRED_KINDS):
        log(f"shard {'/'.join(map(str, settings.shard))}: {len(empty)} outline(s) have no model in this shard "
            "(the other shards test them)")
        empty = []
    if empty:
        raise SuiteError(f"no model in {hf_home} qualifies for {empty[0]}"
                         + (f" (and {len(empty) - 1} more outlines)" if len(empty) > 1 else "")
                         + f": {len(entries)} models listed, see the exclusions above")
    return Session(
        settings=settings, sut_version=version, hf_home=hf_home, manifest=manifest, budget=budget,
        portfolio=portfolio, registry=known_issues.load(REGISTRY),
        cache_before=cache_manifest.take(hf_home / "hub") if (hf_home / "hub").is_dir() else {},
        sizes={e["name"]: int(e["size_bytes"]) for e in entries}, target=target,
    )
