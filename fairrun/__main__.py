"""``python -m fairrun ...``: the same as the ``fairrun`` console script (:func:`fairrun.cli.main`)."""
from fairrun.cli import main

if __name__ == "__main__":
    main()
