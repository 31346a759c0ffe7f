"""`python -m agent_platform`: the `platform` command, for when the console script is not on PATH."""

from agent_platform._cli import main

if __name__ == "__main__":
    main()
