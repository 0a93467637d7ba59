"""`python -m sweeper`: a mistyped command or a local sweep's directory is one line saying what
to type instead."""

from __future__ import annotations

from sweeper.__main__ import main


def test_an_unknown_command_is_named(capsys):
    assert main(["stat"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'stat'; valid: status\n")


def test_status_of_a_local_sweep_dir_says_to_pass_the_sweep_id(tmp_path, capsys):
    assert main(["status", "--sweep-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: no {tmp_path}/slurm_jobs.json: --sweep-dir is the directory" in err
    assert "for a local sweep pass --sweep-id" in err
