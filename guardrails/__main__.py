"""`python -m guardrails` is the `guardrails` command."""

import sys

from guardrails.cli import main

sys.exit(main())
