"""``python -m crm.simulate OUT_DIR [--leads N] [--seed S]`` writes a simulation."""

from crm.simulate.run import main

if __name__ == "__main__":
    main()
