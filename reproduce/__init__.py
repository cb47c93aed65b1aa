"""One script per non-accuracy column of the VidTr paper: `python -m reproduce NAME|all`."""
