"""``python -m dealwithit``: see ``dealwithit.cli``."""

from dealwithit import quiet

# Before anything imports tqdm, which reads its settings once: quiet bars in a log file.
quiet.log_file_progress()

from dealwithit.cli import main  # noqa: E402

raise SystemExit(main())
