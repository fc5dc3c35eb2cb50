"""``python -m jetforce_sesh``: the same as the ``jetforce-sesh`` command."""

from jetforce_sesh.launcher import main

if __name__ == "__main__":
    main()
