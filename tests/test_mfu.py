"""MFU: peaks by GPU name, the measured CPU peak cached once per machine, and bench_gpu.py's
--small shape here, on the CPU (both GPU scripts, as a GPU machine runs them:
tests/test_device_check.py)."""

import importlib.util

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from trainer import perf
from trainer.perf import Peak, device_peak, peak_flops


@pytest.mark.parametrize(
    "name,dtype,tflops",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989),  # SXM, as torch.cuda.get_device_name says
        ("NVIDIA H100 PCIe", "bf16", 756),
        ("NVIDIA H800 PCIe", "bf16", 756),
        ("NVIDIA H100 NVL", "fp32", 417.5),  # fp32 matmuls run as TF32
        ("NVIDIA H200", "bf16", 989),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312),
        ("NVIDIA A100 80GB PCIe", "fp32", 156),
        ("NVIDIA L40S", "bf16", 362),  # not an L40, not an L4
        ("NVIDIA L4", "bf16", 121),
        ("NVIDIA A10", "bf16", 125),
        ("Tesla V100-SXM2-32GB", "bf16", 15.7),  # no bf16 units
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
    ],
)
def test_datasheet_peaks_by_device_name(name, dtype, tflops):
    assert peak_flops(name, dtype) == Peak(tflops * 1e12, "datasheet")


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA Quadro Future 9000"])
def test_unknown_gpus_are_marked_as_estimates(name):
    assert peak_flops(name, "bf16").source == "estimate"


def test_the_gpus_named_by_their_figures_are_in_the_table():
    """GPU_NAMES (what the plan's error suggests) and UNKNOWN_GPU (whose figures an unknown
    name is estimated by) are rows of GPU_PEAKS."""
    for name in (*perf.GPU_NAMES, perf.UNKNOWN_GPU):
        assert peak_flops(name, "bf16").source == "datasheet", name
    assert peak_flops("NVIDIA A10G", "fp32") == Peak(
        peak_flops(perf.UNKNOWN_GPU, "fp32").flops, "estimate"
    )


def test_the_cpu_peak_is_measured_once_per_machine_and_threads(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        perf, "measure_matmul_flops", lambda device, dtype: calls.append(dtype) or 1e11
    )
    monkeypatch.setattr(perf, "MEASURED", {})
    cpu = torch.device("cpu")
    assert device_peak(cpu, "fp32", tmp_path) == Peak(1e11, "measured")
    assert device_peak(cpu, "fp32", tmp_path / "elsewhere").flops == 1e11  # this process's
    monkeypatch.setattr(perf, "MEASURED", {})  # a new process: read back from disk
    assert device_peak(cpu, "fp32", tmp_path).flops == 1e11
    assert calls == ["fp32"]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)  # another machine key: measured again
        device_peak(cpu, "fp32", tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert calls == ["fp32", "fp32"]


def test_a_matmul_rate_is_measured():
    assert perf.measure_matmul_flops(torch.device("cpu"), "fp32", seconds=0.05) > 1e8


def test_host_batches_stay_in_place_on_the_cpu():
    a = np.arange(6).reshape(2, 3)
    t = perf.to_device(a, torch.device("cpu"))
    assert t.data_ptr() == a.ctypes.data


def test_compile_by_default_on_cuda_only():
    assert perf.wants_compile(None, torch.device("cuda"))
    assert not perf.wants_compile(None, torch.device("cpu"))
    assert perf.wants_compile(True, torch.device("cpu"))


def test_bench_gpu_runs_its_small_shape_here():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "scripts" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.main(["--small", "--steps", "2"])
    assert summary["loss_is_finite"] and summary["tokens_per_s"] > 0 and summary["mfu"] > 0
    assert summary["tokens_per_step"] == 2 * 4 * 64
    assert any("scaled_dot_product" in k for k in summary["sdpa"]), summary["sdpa"]


@pytest.mark.parametrize("precision,cuda,bf16", [("bf16", False, True), ("auto", False, False)])
def test_every_dist_resolves_precision_as_the_loop_does(precision, cuda, bf16):
    """The loop's autocast and DeepSpeed's bf16 mode (and FSDP2's, not run here) read one rule."""
    import contextlib

    from tests.conftest import compose_job
    from trainer.dist.zero import ds_config
    from trainer.loop import autocast

    job = compose_job(f"train.precision={precision}", "dist=deepspeed")
    assert perf.uses_bf16(precision, cuda) is bf16
    uses_amp = not isinstance(autocast(precision, torch.device("cpu")), contextlib.nullcontext)
    assert uses_amp is bf16
    config = ds_config(job, world=2, cuda=cuda)
    assert config["torch_autocast"]["enabled"] is bf16 and "bf16" not in config  # fp32 weights


def test_a_compiled_model_is_evaluated_eagerly():
    """train.compile: a validation pass (no_grad, eval mode, a last partial batch) recompiled
    the model, ~10 s of a 75 s demo job on 2 CPU cores; it runs eagerly instead."""
    import contextlib

    from trainer.loop import evaluate

    compiled = []

    def backend(graph, example_inputs):  # counts compilations, runs the graph as traced
        compiled.append(graph)
        return graph.forward

    class Model(torch.nn.Module):  # not an nn.Sequential: torch.compile skips torch.nn's own
        def __init__(self):
            super().__init__()
            self.embed, self.out = torch.nn.Embedding(16, 8), torch.nn.Linear(8, 16)

        def forward(self, x):
            return self.out(torch.nn.functional.dropout(self.embed(x), 0.1, self.training))

    torch.manual_seed(0)
    model = Model()
    model.compile(backend=backend)

    def objective(m, w):
        return torch.nn.functional.cross_entropy(m(w[:, :-1]).flatten(0, 1), w[:, 1:].flatten())

    windows = torch.randint(0, 16, (10, 9))
    objective(model, windows[:4]).backward()
    assert len(compiled) == 1
    loss = evaluate(model, objective, windows, 4, contextlib.nullcontext())
    assert len(compiled) == 1 and model.training and np.isfinite(loss)
