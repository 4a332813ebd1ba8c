"""``python -m guardchain.core`` runs the ``guardchain`` command line (same exit codes as the console script)."""

from guardchain.core.cli import console_main

if __name__ == "__main__":
    raise SystemExit(console_main())
