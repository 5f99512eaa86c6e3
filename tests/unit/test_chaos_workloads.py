"""The workload faults of ``driftmend chaos`` and ``eval`` on a stack that is not a cluster's."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftmend.chaos import run_chaos
from driftmend.drivers.kubernetes.chaos import FAULTS as WORKLOAD_FAULTS
from driftmend.eval import runnable
from driftmend.settings import Settings
from driftmend.spec import load_paths

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "manifests" / "examples" / "local"
KUBERNETES = REPO / "manifests" / "examples" / "kubernetes"


async def test_a_workload_fault_on_the_local_stack_is_refused_with_what_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_chaos("workload-bad-image", Settings(state_dir=tmp_path), [str(LOCAL)])
    err = capsys.readouterr().err
    assert code == 1
    assert "the specs declare no Container on the kubernetes runtime" in err, err
    assert "manifests/examples/kubernetes/workloads.yaml" in err and "Traceback" not in err


def test_eval_runs_the_scenarios_the_declared_stack_can_run() -> None:
    assert runnable(load_paths([KUBERNETES / "workloads.yaml"])) == WORKLOAD_FAULTS
    local = runnable(load_paths([LOCAL]))
    assert "app-crash" in local and not set(local) & set(WORKLOAD_FAULTS)
    # The operator's folder: the demo stack as CRs and the storefront workloads, both.
    assert set(runnable(load_paths([KUBERNETES]))) == set(local) | set(WORKLOAD_FAULTS)
