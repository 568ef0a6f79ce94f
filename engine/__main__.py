"""`python -m engine …`: the command-line interface."""
import sys

try:
    from engine.cli import main
except KeyboardInterrupt:  # Ctrl-C while NumPy loads, before main() is there to handle it
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
