"""`python -m agent_platform.cli`: the `platform` command."""

from agent_platform.cli import main

main()
