"""`python -m app`: open the ConvScope window."""
import sys

from app.main_window import main

sys.exit(main())
