"""``python -m twingap.render.cycles``: a Blender worker process (see :func:`worker_main`)."""

import sys

from twingap.render.cycles.worker import worker_main

sys.exit(worker_main(sys.argv[1:]))
