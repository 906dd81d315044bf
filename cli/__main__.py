"""`python -m cli ...` runs the `provisioner` command (the supervisor starts its children this way)."""

from cli.main import main

main()
