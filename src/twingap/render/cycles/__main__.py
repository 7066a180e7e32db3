"""``python -m twingap.render.cycles``: a Blender worker process (see :func:`worker_main`)."""

import sys

from twingap.procguard import die_with_parent
from twingap.render.cycles.worker import worker_main

die_with_parent()  # the worker ends when the process that started it dies (see twingap.procguard)
sys.exit(worker_main(sys.argv[1:]))
