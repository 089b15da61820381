import sys

from nst.cli.app import main

sys.exit(main())
