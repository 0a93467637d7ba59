"""Checkpoint files: newest wins, old ones are pruned, loading is weights_only."""

import pickle

import torch

from trainer import checkpoint


def test_save_prunes_to_the_newest_and_latest_loads_it(tmp_path):
    for step in (10, 20, 30):
        checkpoint.save(tmp_path, step, {"step": step, "w": torch.full((2,), float(step))}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000020.pt", "step_000000030.pt"]
    state = checkpoint.latest(tmp_path)
    assert state["step"] == 30 and torch.equal(state["w"], torch.full((2,), 30.0))
    checkpoint.clear(tmp_path)
    assert not tmp_path.exists() and checkpoint.latest(tmp_path) is None


class Arbitrary:
    pass


def test_loading_refuses_pickled_objects(tmp_path, caplog):
    torch.save({"evil": Arbitrary()}, tmp_path / "step_000000001.pt", pickle_module=pickle)
    # weights_only=True: tensors and plain data; the file is set aside, never unpickled
    assert checkpoint.latest(tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000001.pt.corrupt"]
    assert "step_000000001.pt is unreadable (UnpicklingError" in caplog.text


def test_a_gpu_jobs_checkpoint_loads_on_a_host_without_that_gpu(tmp_path, monkeypatch, caplog):
    """A file whose tensors were saved on cuda:3 (a node's fourth GPU) resumes on the CPU or on a
    node with fewer GPUs: loaded onto the CPU, never set aside as corrupt."""
    with monkeypatch.context() as m:  # as torch.save tags storage that lives on a GPU
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:3")
        checkpoint.save(tmp_path, 5, {"w": torch.ones(3), "rng_cuda": torch.zeros(8)}, keep=1)
    state = checkpoint.latest(tmp_path)
    assert state is not None and state["w"].device.type == "cpu", caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000005.pt"]
