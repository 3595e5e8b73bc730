"""`python -m churn`: the churn CLI (tuning workers start this way)."""

from churn.cli import main

if __name__ == "__main__":
    main()
