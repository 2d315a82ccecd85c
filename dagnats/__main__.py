"""``python -m dagnats`` == ``dagnats``."""

from dagnats.cli import main

if __name__ == "__main__":
    main()
