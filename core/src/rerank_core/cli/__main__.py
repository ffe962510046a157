"""``python -m rerank_core.cli``: the ``rerank`` command (:func:`rerank_core.cli.main`)."""

import sys

from rerank_core.cli import main

sys.exit(main())
