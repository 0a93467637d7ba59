"""`python -m sweeper <command>`.

python -m sweeper status [--sweep-id ID] [--tracking-uri URI] [--experiment NAME]
                         [--sweep-dir DIR] [--reconcile]
"""

from __future__ import annotations

import sys

COMMANDS = {"status": "each job's state from Slurm (squeue/sacct) and MLflow"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(
                f"error: unknown command {argv[0]!r}; valid: {', '.join(COMMANDS)}\n",
                file=sys.stderr,
            )
        print(
            __doc__.strip()
            + "\n\ncommands:\n"
            + "\n".join(f"  {k:8s}{v}" for k, v in COMMANDS.items()),
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from sweeper import status

    return status.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
