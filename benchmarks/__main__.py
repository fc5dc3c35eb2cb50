"""``python -m benchmarks``: the side-by-side load benchmark (see harness.py)."""

from benchmarks.harness import main

if __name__ == "__main__":
    main()
