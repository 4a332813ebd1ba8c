"""``python -m guardchain.core`` runs the ``guardchain`` command line."""

from guardchain.core.cli import main

if __name__ == "__main__":
    main()
