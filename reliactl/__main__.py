"""``python -m reliactl`` works exactly as the ``reliactl`` command."""

from reliactl.cli import main

if __name__ == "__main__":
    main()
