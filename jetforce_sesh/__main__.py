"""``python -m jetforce_sesh``: the same as the ``jetforce-sesh`` command."""

from jetforce_sesh.cli.main import main

if __name__ == "__main__":
    main()
