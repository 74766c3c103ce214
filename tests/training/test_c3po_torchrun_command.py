"""torchrun's command line for a C3PO job: standalone on one node, the given rendezvous on many."""

from pathlib import Path

import pytest

from training.c3po.launch import Rendezvous, torchrun_command

CONTROL = Path("/jobs/job-7-train/control")


def _command(rendezvous):
    return torchrun_command(
        nproc_per_node=2, spec_path=CONTROL / "spec.json", control=CONTROL, rendezvous=rendezvous
    )


def test_one_node_is_standalone():
    command = _command(None)
    assert "--standalone" in command and "--nproc-per-node=2" in command
    assert not [part for part in command if part.startswith("--rdzv")]
    assert _command(Rendezvous(nnodes=1, node_rank=0, endpoint="")) == command


def test_several_nodes_use_the_rendezvous_and_name_it_after_the_job_by_default():
    command = _command(Rendezvous(nnodes=2, node_rank=1, endpoint="head:29400"))
    assert "--standalone" not in command
    for part in ("--nnodes=2", "--node-rank=1", "--rdzv-endpoint=head:29400", "--rdzv-id=control"):
        assert part in command
    named = _command(Rendezvous(nnodes=2, node_rank=0, endpoint="head:29400", rdzv_id="run-9"))
    assert "--rdzv-id=run-9" in named


def test_several_nodes_without_an_endpoint_are_refused():
    with pytest.raises(ValueError, match="TRAINING_RDZV_ENDPOINT"):
        _command(Rendezvous(nnodes=2, node_rank=0, endpoint=""))
