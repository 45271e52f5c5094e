import sys

from hanode.cli import main

sys.exit(main())
